// A filter that tries what a filter must not do — reach the network (fetch), read the
// environment or the filesystem through any API a JavaScript runtime might expose — and rejects
// every query with what it found, as JSON (user `probe-fetch`: it calls fetch). The sandbox tests
// push it into a live gateway and read the rejection.
const attempt = (probe) => {
  try {
    const found = probe();
    return `allowed: ${String(found)}`.slice(0, 200);
  } catch (e) {
    return `denied: ${String(e)}`.slice(0, 200);
  }
};

export function init(config) {
  return { wantsSqlObjects: false };
}

export function route(req, group) {
  // the runtime is built without HTTP: a call to fetch traps (the gateway counts the trap and
  // routes natively), so it is only made for the user who asks for it
  if (req.user === "probe-fetch") fetch("http://127.0.0.1:5432/");
  const probes = {
    fetch: attempt(() => `typeof fetch: ${typeof fetch}`),
    environment: attempt(() => {
      if (typeof process === "undefined" || !process.env) throw new Error("no process.env");
      return JSON.stringify(process.env);
    }),
    filesystem: attempt(() => {
      if (typeof require === "undefined") throw new Error("no require");
      return require("fs").readFileSync("/etc/passwd", "utf8");
    }),
  };
  return { tag: "reject", val: { status: 418, message: JSON.stringify(probes) } };
}
