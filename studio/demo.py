"""`studio demo`: a how-to storyboard, end to end through the service.

The demo starts the service in this process (in-process backend, a scratch data folder, a free local port),
submits a storyboard job over HTTP, follows its progress, and downloads its artifacts: an HTML page, a contact
sheet, the film (a title card, then each step's clip with its caption, as one H.264 MP4), the keyframes as GIF and
MP4, each step's clip, and JSON.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

DEFAULT_QUESTION = "how do i build a tower with a red square and a blue circle ?"


def run_demo(*, out_dir: str = "studio-demo", seed: int = 0, question: str | None = None, num_steps: int = 2) -> Path:
    """Run a storyboard job through a local service and download it into `out_dir`; returns the HTML page."""
    from studio.client import StudioClient, progress_line
    from studio.server import BackgroundServer
    from studio.compose import build_runtime
    from studio.service import Service, ServiceConfig

    started = time.perf_counter()
    print(f"model: {_describe_default()}")
    params = {"question": question or DEFAULT_QUESTION, "num_steps": num_steps, "clip_frames": 9}
    with tempfile.TemporaryDirectory(prefix="studio-demo-") as data_dir:
        service = Service(ServiceConfig(data_dir=Path(data_dir), workers=1), build_runtime(local=True).backend)
        with BackgroundServer(service) as server, StudioClient(server.url) as client:
            print(f"service: {server.url} (in-process backend)")
            job = client.submit("storyboard", params, seed=seed)
            print(f"job {job['id']} submitted")
            job = client.wait(job["id"], on_progress=lambda j: print("\r" + progress_line(j).ljust(110), end="",
                                                                     file=sys.stderr, flush=True), poll_s=0.1)
            print(file=sys.stderr)
            if job["state"] != "succeeded":
                raise RuntimeError(f"the storyboard job {job['state']}: {job['error']}")
            files = client.fetch(job["id"], out_dir)
    result = job["result"]
    out = Path(out_dir)
    for index, caption in enumerate(result["captions"], start=1):
        print(f"  {index}. {caption}")
    print(f"storyboard written in {time.perf_counter() - started:.1f} s ({len(files)} files)")
    print(f"  page:          {out / result['page']}")
    print(f"  film:          {out / result['film']}")
    print(f"  contact sheet: {out / result['contact_sheet']}")
    print(f"  keyframes:     {out / result['keyframes_gif']}, {out / result['keyframes_mp4']}")
    print(f"  JSON:          {out / result['json']}")
    return out / result["page"]


def _describe_default() -> str:
    from studio.defaults import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "showo").is_dir():
        return "ShapesWorld default model"
    return ("seeded tiny model (untrained weights: captions and keyframes are noise until the trained ShapesWorld "
            "model ships in studio/default_model/)")
