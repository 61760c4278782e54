"""Session message handling and a headless client run, against an in-process test double of the server.

The real server is not in this tree yet; this double speaks the protocol minimally with the real codec
(``ar_server.protocol``): welcome, one obs per frame, a step, a notice, and ``end`` after a Done event.
"""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
from aiohttp import WSMsgType, web

from ar_server.protocol import (
    STREAM_PATH,
    Animate,
    End,
    Error,
    Event,
    Frame,
    Hello,
    Highlight,
    Limits,
    Notice,
    Obs,
    PartObs,
    PoseData,
    Progress,
    Step,
    Timing,
    Welcome,
    decode_client,
    encode_server,
)
from client_panda3d.app import ClientApp
from client_panda3d.session import ClientSession, ConnectionChange, SessionConfig
from client_panda3d.sources import open_source
from product_models.camera import CameraIntrinsics, Pose

STEP = Step("plug_wan", "Plug the internet cable into the WAN port.",
            (Highlight("port_wan", "#ffb800"), Animate("port_wan", "plug", "#26d959")), (), Progress(1, 2),
            accepts_done=True)


def make_server(seen: list) -> web.Application:
    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        pose = Pose.orbit(180, 25, 0.45)
        async for raw in ws:
            if raw.type != WSMsgType.BINARY:
                continue
            msg = decode_client(raw.data)
            seen.append(msg)
            if isinstance(msg, Hello):
                await ws.send_bytes(encode_server(Welcome("sess-1", "resume-1", Limits(max_fps=20.0), 1.0)))
                await ws.send_bytes(encode_server(STEP))
            elif isinstance(msg, Frame):
                image = cv2.imdecode(np.frombuffer(msg.jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert image.shape[:2] == (msg.height, msg.width)
                await ws.send_bytes(encode_server(Obs(
                    msg.seq, msg.ts, "router_ax1800", 0.9,
                    PoseData(tuple(pose.R.ravel().tolist()), tuple(pose.t.tolist())),
                    {"port_wan": PartObs("empty", 0.9, True)}, Timing(total_ms=5.0))))
                if msg.seq == 2:
                    await ws.send_bytes(encode_server(Notice("hold_still", "Hold the phone steady")))
            elif isinstance(msg, Event):
                if msg.kind == "done":
                    await ws.send_bytes(encode_server(End("resolved", "Fixed")))
                    await ws.close()
                else:
                    await ws.send_bytes(encode_server(Error("bad_field", f"no {msg.kind} here", field="kind")))
        return ws

    app = web.Application()
    app.router.add_get(STREAM_PATH, stream)
    return app


def config(server, **kw) -> SessionConfig:
    return SessionConfig(str(server.make_url("/")).rstrip("/").replace("http", "ws"), "tok",
                         CameraIntrinsics.from_fov(96, 72), fps=20.0, **kw)


async def test_session_says_hello_sends_frames_and_reads_results(aiohttp_server) -> None:
    seen: list = []
    server = await aiohttp_server(make_server(seen))
    session = ClientSession(config(server, locale="de", scene="router_no_internet"))
    task = asyncio.create_task(session.run())
    got: list = []
    for i in range(200):
        session.offer_frame(np.full((72, 96, 3), i % 255, np.uint8), float(i))
        await asyncio.sleep(0.01)
        while not session.inbox.empty():
            got.append(session.inbox.get_nowait())
        if sum(isinstance(m, Obs) for m in got) >= 3:
            break
    session.send_event("help", step="plug_wan")
    session.send_event("done", step="plug_wan")
    await asyncio.wait_for(task, 5)
    while not session.inbox.empty():
        got.append(session.inbox.get_nowait())
    hello = seen[0]
    assert isinstance(hello, Hello) and hello.locale == "de" and hello.scene == "router_no_internet"
    assert hello.camera is not None and hello.camera.width == 96
    frames = [m for m in seen if isinstance(m, Frame)]
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
    events = [m for m in seen if isinstance(m, Event)]
    assert [(e.kind, e.step) for e in events] == [("help", "plug_wan"), ("done", "plug_wan")]
    kinds = [type(m).__name__ for m in got]
    assert kinds[:3] == ["ConnectionChange", "ConnectionChange", "Welcome"]
    assert "Step" in kinds and "Notice" in kinds and "Error" in kinds and kinds[-2:] == ["End", "ConnectionChange"]
    assert isinstance(got[-1], ConnectionChange) and got[-1].state == "closed"


async def test_unreachable_server_is_reported_in_the_inbox() -> None:
    session = ClientSession(SessionConfig("ws://127.0.0.1:9", "tok", CameraIntrinsics.from_fov(32, 24)))
    await asyncio.wait_for(session.run(), 10)
    notes = []
    while not session.inbox.empty():
        notes.append(session.inbox.get_nowait())
    assert notes[-1].state == "closed" and "cannot reach ws://127.0.0.1:9/v1/stream" in notes[-1].detail


async def test_headless_run_writes_frames_video_and_transcript(aiohttp_server, tmp_path) -> None:
    seen: list = []
    server = await aiohttp_server(make_server(seen))
    source = open_source("twin:router_ax1800?fault=wan_unplugged&seed=1", 160, 120)
    cfg = SessionConfig(str(server.make_url("/")).rstrip("/").replace("http", "ws"), "tok", source.camera,
                        product=source.product, fps=10.0)
    app = ClientApp(source, ClientSession(cfg), None, source.camera, fps=10.0, out=tmp_path, max_frames=40)
    original = app._drain

    def drain_then_press_done(now: float) -> None:
        original(now)
        if app.step is not None and app.tracker.newest is not None and not app.transcript.events:
            app.input.on_key(13)

    app._drain = drain_then_press_done  # type: ignore[method-assign]
    transcript = await asyncio.to_thread(app.run)
    data = json.loads((tmp_path / "transcript.json").read_text())
    assert data["outcome"] == transcript.outcome == "resolved"
    assert data["session"] == "sess-1"
    assert data["steps"][0]["step"] == "plug_wan" and data["steps"][0]["progress"] == "1/2"
    assert data["events"][0]["kind"] == "done"
    assert data["timing"]["frames"] >= 2 and data["timing"]["results"] >= 1
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == data["timing"]["frames"]
    assert (tmp_path / "view.mp4").stat().st_size > 1000
    assert cv2.imread(str(pngs[-1])).shape == (120, 160, 3)
