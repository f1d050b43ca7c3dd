"""A filter that tries what a filter must not do — read and write files, list directories, read
the environment, open a connection, resolve a name — and rejects every query with what it found,
as JSON. The sandbox tests push it into a live gateway and read the rejection."""
import json
import os

import wit_world
from wit_world.imports import types


def attempt(probe):
    try:
        found = probe()
    except BaseException as e:  # noqa: BLE001 - every refusal is an answer here
        return f"denied: {type(e).__name__}: {e}"[:200]
    return f"allowed: {found!r}"[:200]


def environment():
    if not os.environ:
        raise LookupError("the environment is empty")
    return dict(os.environ)


def connect():
    import socket
    return socket.create_connection(("127.0.0.1", 5432), timeout=1)


def resolve():
    import socket
    return socket.getaddrinfo("localhost", 80)


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> types.InitInfo:
        return types.InitInfo(wants_sql_objects=False)

    def route(self, req: types.QueryRequest, group: str) -> types.Decision:
        probes = {
            "read_file": attempt(lambda: open("/etc/passwd").read(64)),
            "write_file": attempt(lambda: open("/tmp/sluice-sandbox-probe", "w").write("x")),
            "list_dir": attempt(lambda: os.listdir("/")),
            "environment": attempt(environment),
            "connect": attempt(connect),
            "resolve": attempt(resolve),
        }
        return types.Decision_Reject(types.Rejection(status=418, message=json.dumps(probes)))
