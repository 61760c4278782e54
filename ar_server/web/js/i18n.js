// The page's own words (steps and notices arrive translated from the server). The languages are those the
// scene library is written in; the Panda3D client's panel (client_panda3d/panel.py WORDS) uses the same terms.

const WORDS = {
  en: {
    done: "Done", back: "Back", help: "Help", step: "Step {n} of {total}",
    camera_starting: "Starting the camera…", camera_denied: "The camera is blocked. Allow camera access for this page and reload it.",
    camera_missing: "No camera was found on this device.",
    connecting: "Connecting…", connected: "Connected", reconnecting: "Connection lost. Reconnecting in {s} s…",
    offline: "Offline. Waiting for the network…", closed: "Session ended",
    searching: "Looking for the device", in_view: "Device in view",
    waiting: "Point the camera at your device.",
    behind: "{part}: on the far side, turn the device",
    consent_title: "May we keep some pictures?",
    consent_text: "To improve support, this service can keep a few pictures from your camera (one a second at most, with faces blurred). Guidance works the same either way.",
    consent_yes: "Allow", consent_no: "No, thanks",
    end_resolved: "Fixed!", end_escalated: "A support agent takes over", end_other: "The session has ended",
    no_token: "This page needs a support link. Open the link you were sent.",
    link_invalid: "This support link cannot be used: {why}",
    taken_over: "This session continues in another window.",
    talk: "Talk to a person", agent_waiting: "A person from support will join you shortly.",
    agent_joined: "{name} from support joined", agent_left: "{name} left", agent_pointing: "{name} is pointing at the device",
  },
  de: {
    done: "Fertig", back: "Zurück", help: "Hilfe", step: "Schritt {n} von {total}",
    camera_starting: "Kamera startet…", camera_denied: "Die Kamera ist gesperrt. Erlauben Sie dieser Seite den Kamerazugriff und laden Sie sie neu.",
    camera_missing: "Auf diesem Gerät wurde keine Kamera gefunden.",
    connecting: "Verbinde…", connected: "Verbunden", reconnecting: "Verbindung unterbrochen. Neuer Versuch in {s} s…",
    offline: "Offline. Warte auf das Netz…", closed: "Sitzung beendet",
    searching: "Suche das Gerät", in_view: "Gerät im Bild",
    waiting: "Richten Sie die Kamera auf Ihr Gerät.",
    behind: "{part}: auf der Rückseite, Gerät drehen",
    consent_title: "Dürfen wir einige Bilder behalten?",
    consent_text: "Um den Support zu verbessern, kann dieser Dienst einige Kamerabilder behalten (höchstens eines pro Sekunde, Gesichter unkenntlich). Die Anleitung funktioniert so oder so.",
    consent_yes: "Erlauben", consent_no: "Nein, danke",
    end_resolved: "Behoben!", end_escalated: "Ein Support-Mitarbeiter übernimmt", end_other: "Die Sitzung ist beendet",
    no_token: "Diese Seite braucht einen Support-Link. Öffnen Sie den Link, den Sie erhalten haben.",
    link_invalid: "Dieser Support-Link ist nicht nutzbar: {why}",
    taken_over: "Diese Sitzung läuft in einem anderen Fenster weiter.",
    talk: "Mit einer Person sprechen", agent_waiting: "Gleich meldet sich eine Person vom Support.",
    agent_joined: "{name} vom Support ist dabei", agent_left: "{name} hat die Sitzung verlassen", agent_pointing: "{name} zeigt auf das Gerät",
  },
  es: {
    done: "Hecho", back: "Atrás", help: "Ayuda", step: "Paso {n} de {total}",
    camera_starting: "Iniciando la cámara…", camera_denied: "La cámara está bloqueada. Permita el acceso a la cámara en esta página y vuelva a cargarla.",
    camera_missing: "No se encontró ninguna cámara en este dispositivo.",
    connecting: "Conectando…", connected: "Conectado", reconnecting: "Conexión perdida. Reintento en {s} s…",
    offline: "Sin conexión. Esperando la red…", closed: "Sesión terminada",
    searching: "Buscando el aparato", in_view: "Aparato a la vista",
    waiting: "Apunte la cámara a su aparato.",
    behind: "{part}: al otro lado, gira el aparato",
    consent_title: "¿Podemos guardar algunas imágenes?",
    consent_text: "Para mejorar el soporte, este servicio puede guardar algunas imágenes de su cámara (como mucho una por segundo, con las caras difuminadas). La guía funciona igual en ambos casos.",
    consent_yes: "Permitir", consent_no: "No, gracias",
    end_resolved: "¡Arreglado!", end_escalated: "Un agente de soporte continúa", end_other: "La sesión ha terminado",
    no_token: "Esta página necesita un enlace de soporte. Abra el enlace que recibió.",
    link_invalid: "Este enlace de soporte no se puede usar: {why}",
    taken_over: "Esta sesión continúa en otra ventana.",
    talk: "Hablar con una persona", agent_waiting: "En breve se unirá una persona de soporte.",
    agent_joined: "{name} de soporte se ha unido", agent_left: "{name} se ha ido", agent_pointing: "{name} señala el aparato",
  },
};

// docs/PROTOCOL.md, "locale": what `hello.locale` accepts.
const LOCALE = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$/;

/** The first browser language the protocol accepts as a locale, else "en". */
export function browserLocale(languages) {
  for (const tag of languages || []) {
    if (typeof tag === "string" && tag.length <= 35 && LOCALE.test(tag)) return tag;
  }
  return "en";
}

/** The page's words for `locale` (its language part), English for a language not translated. */
export function words(locale) {
  return WORDS[locale.split("-")[0].toLowerCase()] || WORDS.en;
}

export function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}
