"""Video transcoding: ffmpeg encodes a generated test source to H.264/AAC HLS segments."""

from __future__ import annotations

from minerlens_lab.benign.common import LOOKALIKE_REPEATS, read_log, repeat_threads, setting
from minerlens_lab.workload import RunContext, Workload


class FfmpegTranscode(Workload):
    name = "ffmpeg-x264-hls"
    family = "media"
    label = "benign"
    variant = "720p30-veryfast"
    description = (
        "ffmpeg: lavfi testsrc2 720p30 + sine audio -> libx264 veryfast (superfast, medium by repeat) + AAC,"
        " 2 s HLS segments"
    )
    repeats = LOOKALIKE_REPEATS
    imitates = "a no-yield miner: a long-running encoder keeping every core busy, few syscalls per second"
    requires = ("ffmpeg",)

    def command(self, ctx: RunContext) -> list[str]:
        out = ctx.workdir / "hls"
        out.mkdir(exist_ok=True)
        preset = setting(ctx, "preset", ("veryfast", "superfast", "medium"))
        return [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-progress",
            str(ctx.workdir / "progress.txt"),
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-threads",
            str(repeat_threads(ctx)),
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-t",
            "3600",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "0",
            "-y",
            str(out / "stream.m3u8"),
        ]

    def check(self, ctx: RunContext) -> None:
        progress = dict(
            line.split("=", 1) for line in read_log(ctx.workdir / "progress.txt").splitlines() if "=" in line
        )
        frames = int(progress.get("frame", "0") or 0)
        ctx.facts["frames_encoded"] = frames
        ctx.facts["segments"] = len(list((ctx.workdir / "hls").glob("*.ts")))
        if frames == 0:
            msg = "ffmpeg encoded no frame"
            raise RuntimeError(msg)
