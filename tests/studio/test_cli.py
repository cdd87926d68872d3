"""The CLI's client commands against a live service, and the import rule of the service package."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from studio.cli import main

STUDIO = Path(__file__).resolve().parents[2] / "studio"


def test_submit_wait_status_fetch_and_cancel_from_the_command_line(make_service, tmp_path, capsys):
    from studio.server import BackgroundServer

    with BackgroundServer(make_service()) as server:
        common = ["--server", server.url]
        assert main(["submit", "t2v", *common, "-p", "prompt=a red square moves", "-p", "num_frames=5",
                     "-p", "steps=2", "--seed", "3"]) == 0
        job_id = capsys.readouterr().out.strip()
        assert main(["wait", job_id, *common]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["state"] == "succeeded" and "100.0%" in captured.err
        assert main(["status", job_id, *common]) == 0
        assert json.loads(capsys.readouterr().out)["params"] == {"prompt": "a red square moves", "num_frames": 5,
                                                                 "steps": 2, "guidance_scale": 0.0,
                                                                 "code_temperature": None}
        assert main(["fetch", job_id, *common, "--out", str(tmp_path / "out")]) == 0
        assert {p.name for p in (tmp_path / "out").iterdir()} == {"video.mp4", "video.gif", "film.mp4", "result.json"}
        assert len(capsys.readouterr().out.splitlines()) == 4
        assert main(["submit", "storyboard", *common, "-p", "question=how do i build a tower ?", "-p", "steps=2",
                     "-p", "num_steps=1", "--wait"]) == 0
        assert json.loads(capsys.readouterr().out)["result"]["page"] == "index.html"
        assert main(["cancel", job_id, *common]) == 2  # finished jobs cannot be cancelled
        assert "already succeeded" in capsys.readouterr().err
        assert main(["submit", "t2i", *common, "-p", "prompt=x", "-p", "colour=red"]) == 2
        assert "unknown field 'colour'" in capsys.readouterr().err



def test_bench_lists_the_showo2_rows_in_its_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--family", "showo2", "--no-ray", "--json", str(out)]) == 0
    names = ["showo2_und/b1/new16", "showo2_und/b4/new16", "showo2_t2i/cfg/steps5"]
    rows = json.loads(out.read_text())
    assert [row["name"] for row in rows] == names
    assert all(row["preset"] == "tiny" and row["baseline_s"] > 0 and row["ours_s"] > 0 for row in rows)
    table = capsys.readouterr().out
    assert all(f"| {name} | tiny |" in table for name in names)

def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_service_reaches_the_runtime_at_one_point_and_never_the_model():
    allowed = {
        "ray_cluster": {"compose.py", "cli.py"},  # cli.py: only the existing `bench` command's Ray benchmark
        "model": {"defaults.py", "cli.py"},  # defaults.py builds the default pipeline; cli.py: `bench`
    }
    for path in STUDIO.glob("*.py"):
        imports = _imports(path)
        for package, owners in allowed.items():
            assert package not in imports or path.name in owners, f"studio/{path.name} imports {package}"
