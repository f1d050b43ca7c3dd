"""docs/write-a-filter.md, run exactly as written: its shell blocks, in order, in a fresh directory,
against `sluice demo` on the ports the page names, with a fresh cargo target (as a new user has)."""
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from conftest import ROOT, Proc, http_json, sluice_bin

TOKEN = "my-admin-token-0123456789"


class Demo(Proc):
    def __init__(self):
        env = dict(os.environ, SLUICE_ADMIN_TOKEN=TOKEN)
        # the demo prints a banner, not JSON: wait for its readiness instead
        self.p = subprocess.Popen([sluice_bin(), "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in self.p.stdout:
            if "Press Ctrl-C to stop." in line:
                # keep reading its log, so a full pipe never blocks it
                threading.Thread(target=self.p.stdout.read, daemon=True).start()
                return
        raise RuntimeError("the demo did not start (are ports 8080/8081 free?)")


def run_section(procs, tmp_path, heading, commands):
    """Run one section of write-a-filter.md as written, against a fresh demo, with a fresh cargo
    target (as a new user has)."""
    text = (ROOT / "docs" / "write-a-filter.md").read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == commands and len(blocks) <= 10, f"{heading}: {len(blocks)} commands"
    demo = Demo()
    procs.append(demo)
    deadline = time.time() + 10
    while http_json("GET", "http://127.0.0.1:8081/readyz")[0] != 200:
        assert time.time() < deadline, "the demo never became ready"
        time.sleep(0.05)
    env = dict(os.environ, SLUICE_SRC=str(ROOT), SLUICE_ADMIN_TOKEN=TOKEN,
               PATH=f"{Path(sluice_bin()).parent}:{os.environ['PATH']}")
    env.pop("CARGO_TARGET_DIR", None)  # a new user's crate builds into its own target/
    script = "set -euo pipefail\n" + "\n".join(blocks)
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # the query printed rows from the etl cluster; the listing shows the new slot first
    assert "'etl-1'" in out.stdout and "'adhoc-1'" not in out.stdout, out.stdout
    listing = out.stdout.split("SLOT", 1)[1].splitlines()
    assert listing[1].split()[:2] == ["etl-users", "1"], listing
    return text


def test_write_your_own_filter_page_works_as_written(procs, tmp_path):
    text = run_section(procs, tmp_path, "Nine commands", 9)
    code = text.split("cat > src/lib.rs <<'EOF_RS'\n", 1)[1].split("EOF_RS", 1)[0]
    assert len(code.strip().splitlines()) <= 30, "the Rust filter fits in 30 lines"


def test_the_python_section_works_as_written(procs, tmp_path):
    run_section(procs, tmp_path, "In Python", 7)


def test_the_javascript_section_works_as_written(procs, tmp_path):
    run_section(procs, tmp_path, "In JavaScript", 7)
