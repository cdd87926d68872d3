"""The Show-o2 benchmark runs end to end on the tiny preset and writes its JSON."""

import json

from model.showo2 import bench


def test_quick_run_writes_rows(tmp_path):
    records = bench.run_benchmarks(quick=True, clock="process")
    assert [r.name for r in records] == ["showo2_und/b1/new16", "showo2_t2i/cfg/steps5"]
    assert all(r.baseline_s > 0 and r.ours_s > 0 and r.ratio > 0 for r in records)
    bench.report(records, str(tmp_path / "rows.json"))
    assert [row["name"] for row in json.loads((tmp_path / "rows.json").read_text())] == [r.name for r in records]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]
