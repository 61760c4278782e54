// The msgpack subset protocol v1 uses (docs/PROTOCOL.md, section 1): nil, bool, int, float, str, bin, array
// and map with string keys. Ext types are refused, as the server refuses them; so are bytes after the value.
//
// Encoding follows msgpack-python's `packb(..., use_bin_type=True)`, which the server decodes: the smallest
// int form, float64 for non-integers, str8/16/32, bin8/16/32. A JS number that is an integer is sent as an int
// (the protocol's `seq`, `width`, `height`); `ts` and the intrinsics are floats on the server side whether
// they arrive as int or float, so that is safe. Use `Float(x)` to force a float64.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

export class MsgpackError extends Error {}

/** A number to encode as float64 even when it is integral. */
export class Float {
  constructor(value) {
    this.value = value;
  }
}

class Writer {
  constructor() {
    this.buffer = new Uint8Array(256);
    this.view = new DataView(this.buffer.buffer);
    this.length = 0;
  }

  reserve(extra) {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  byte(b) {
    this.reserve(1);
    this.buffer[this.length++] = b;
  }

  bytes(data) {
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
  }

  u16(n) {
    this.reserve(2);
    this.view.setUint16(this.length, n);
    this.length += 2;
  }

  u32(n) {
    this.reserve(4);
    this.view.setUint32(this.length, n);
    this.length += 4;
  }

  f64(x) {
    this.reserve(8);
    this.view.setFloat64(this.length, x);
    this.length += 8;
  }

  u64(n) {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(n));
    this.length += 8;
  }

  i64(n) {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(n));
    this.length += 8;
  }

  result() {
    return this.buffer.slice(0, this.length);
  }
}

function writeInt(w, n) {
  if (n >= 0) {
    if (n < 0x80) w.byte(n);
    else if (n < 0x100) { w.byte(0xcc); w.byte(n); }
    else if (n < 0x10000) { w.byte(0xcd); w.u16(n); }
    else if (n < 0x100000000) { w.byte(0xce); w.u32(n); }
    else { w.byte(0xcf); w.u64(n); }
  } else if (n >= -32) {
    w.byte(n & 0xff);
  } else if (n >= -0x80) {
    w.byte(0xd0); w.byte(n & 0xff);
  } else if (n >= -0x8000) {
    w.byte(0xd1); w.u16(n & 0xffff);
  } else if (n >= -0x80000000) {
    w.byte(0xd2); w.u32(n >>> 0);
  } else {
    w.byte(0xd3); w.i64(n);
  }
}

function writeLength(w, n, fix, fixMax, m8, m16, m32) {
  if (fix !== null && n <= fixMax) w.byte(fix | n);
  else if (m8 !== null && n < 0x100) { w.byte(m8); w.byte(n); }
  else if (n < 0x10000) { w.byte(m16); w.u16(n); }
  else { w.byte(m32); w.u32(n); }
}

function writeValue(w, value, depth) {
  if (depth > 32) throw new MsgpackError("value nested too deeply to encode");
  if (value === null || value === undefined) w.byte(0xc0);
  else if (value === false) w.byte(0xc2);
  else if (value === true) w.byte(0xc3);
  else if (value instanceof Float) {
    if (!Number.isFinite(value.value)) throw new MsgpackError(`cannot send a non-finite float: ${value.value}`);
    w.byte(0xcb); w.f64(value.value);
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new MsgpackError(`cannot send a non-finite number: ${value}`);
    if (Number.isSafeInteger(value)) writeInt(w, value);
    else { w.byte(0xcb); w.f64(value); }
  } else if (typeof value === "string") {
    const data = textEncoder.encode(value);
    writeLength(w, data.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
    w.bytes(data);
  } else if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
    const data = value instanceof ArrayBuffer ? new Uint8Array(value) : value;
    writeLength(w, data.length, null, 0, 0xc4, 0xc5, 0xc6);
    w.bytes(data);
  } else if (Array.isArray(value)) {
    writeLength(w, value.length, 0x90, 15, null, 0xdc, 0xdd);
    for (const item of value) writeValue(w, item, depth + 1);
  } else if (typeof value === "object") {
    // Keys whose value is undefined are left out: the protocol's optional fields are "absent or nil".
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    writeLength(w, keys.length, 0x80, 15, null, 0xde, 0xdf);
    for (const key of keys) {
      writeValue(w, key, depth + 1);
      writeValue(w, value[key], depth + 1);
    }
  } else {
    throw new MsgpackError(`cannot encode a ${typeof value}`);
  }
}

/** msgpack bytes (Uint8Array) of `value`. */
export function encode(value) {
  const w = new Writer();
  writeValue(w, value, 0);
  return w.result();
}

class Reader {
  constructor(data) {
    this.data = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    this.view = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    this.offset = 0;
  }

  need(n) {
    if (this.offset + n > this.data.length) throw new MsgpackError("truncated msgpack value");
  }

  u8() { this.need(1); return this.data[this.offset++]; }
  u16() { this.need(2); const v = this.view.getUint16(this.offset); this.offset += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.offset); this.offset += 4; return v; }
  i8() { this.need(1); const v = this.view.getInt8(this.offset); this.offset += 1; return v; }
  i16() { this.need(2); const v = this.view.getInt16(this.offset); this.offset += 2; return v; }
  i32() { this.need(4); const v = this.view.getInt32(this.offset); this.offset += 4; return v; }
  f32() { this.need(4); const v = this.view.getFloat32(this.offset); this.offset += 4; return v; }
  f64() { this.need(8); const v = this.view.getFloat64(this.offset); this.offset += 8; return v; }

  big(signed) {
    this.need(8);
    const v = signed ? this.view.getBigInt64(this.offset) : this.view.getBigUint64(this.offset);
    this.offset += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new MsgpackError(`integer ${v} is outside the exact range of a JS number`);
    }
    return Number(v);
  }

  raw(n) {
    this.need(n);
    const out = this.data.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  str(n) {
    try {
      return textDecoder.decode(this.raw(n));
    } catch {
      throw new MsgpackError("str is not valid UTF-8");
    }
  }

  array(n, depth) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  map(n, depth) {
    const out = {};
    for (let i = 0; i < n; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== "string") throw new MsgpackError("map key is not a str");
      // A plain object would let a "__proto__" key change the prototype; define it as an own property.
      Object.defineProperty(out, key, { value: this.value(depth + 1), enumerable: true, writable: true,
        configurable: true });
    }
    return out;
  }

  value(depth) {
    if (depth > 64) throw new MsgpackError("msgpack value nested too deeply");
    const b = this.u8();
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xf0) === 0x80) return this.map(b & 0x0f, depth);
    if ((b & 0xf0) === 0x90) return this.array(b & 0x0f, depth);
    if ((b & 0xe0) === 0xa0) return this.str(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.raw(this.u8()).slice();
      case 0xc5: return this.raw(this.u16()).slice();
      case 0xc6: return this.raw(this.u32()).slice();
      case 0xca: return this.f32();
      case 0xcb: return this.f64();
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.big(false);
      case 0xd0: return this.i8();
      case 0xd1: return this.i16();
      case 0xd2: return this.i32();
      case 0xd3: return this.big(true);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      default:
        throw new MsgpackError(`msgpack type 0x${b.toString(16)} is not used by the protocol (ext or reserved)`);
    }
  }
}

/** The one msgpack value in `data` (ArrayBuffer or Uint8Array); throws MsgpackError on anything else. */
export function decode(data) {
  const reader = new Reader(data);
  const value = reader.value(0);
  if (reader.offset !== reader.data.length) {
    throw new MsgpackError(`${reader.data.length - reader.offset} bytes after the msgpack value`);
  }
  return value;
}
