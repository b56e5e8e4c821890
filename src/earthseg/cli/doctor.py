"""`earthseg doctor` (`docker run IMAGE doctor`): does this host's GPU fit this image."""

from __future__ import annotations

import argparse
import json
from typing import Any

EXIT_REFUSED = 1


def add_commands(commands: Any) -> None:
    from earthseg.gpu.startup import ALLOW_CPU_ENV

    doctor = commands.add_parser(
        "doctor",
        help="say whether this host's NVIDIA driver and GPUs fit the installed CUDA, "
        "as the images' start-up check decides",
        description="The NVIDIA driver and the GPUs visible here, the CUDA runtime and "
        "cuDNN wheels installed, what ONNX Runtime and TensorFlow (when installed) see, "
        "and the verdict of the images' start-up check. Exit 0 when they fit (or no GPU is "
        f"visible), 1 when start-up would refuse ({ALLOW_CPU_ENV}=true runs on the CPU "
        "instead).",
    )
    doctor.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    doctor.set_defaults(run=diagnose)


def diagnose(args: argparse.Namespace) -> int:
    from earthseg.gpu.doctor import installed_frameworks, probe, report

    diagnosis = probe(installed_frameworks())
    print(json.dumps(diagnosis.to_json(), indent=2) if args.json else report(diagnosis))
    return 0 if diagnosis.verdict.ok else EXIT_REFUSED
