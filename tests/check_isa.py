"""`make test-isa`'s guard: says which CPU kernels torch uses under the limits the target sets, and fails
when AVX-512 or AMX are still on (a limit that did not take effect would make the run prove nothing).

ATen picks its vectorised kernels by `ATEN_CPU_CAPABILITY` (reported by
`torch.backends.cpu.get_cpu_capability()`); oneDNN (convolutions, matmuls) by `ONEDNN_MAX_CPU_ISA`, and names
the ISA it dispatches to on first use when `ONEDNN_VERBOSE=1`, so a convolution runs in a child with it on.
Not collected by pytest (no `test_` prefix)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

CONV = ("import torch\nwith torch.no_grad():\n    torch.nn.Conv2d(64, 64, 3).eval()(torch.randn(8, 64, 32, 32))")


def main() -> int:
    cap = torch.backends.cpu.get_cpu_capability()
    run = subprocess.run([sys.executable, "-c", CONV], env={**os.environ, "ONEDNN_VERBOSE": "1"},
                         capture_output=True, text=True, check=True)
    isa = next((ln.split("isa:", 1)[1].strip() for ln in run.stdout.splitlines() if "isa:" in ln),
               "not reported (oneDNN not used)")
    print(f"ATen CPU capability: {cap}; oneDNN ISA: {isa}; ATEN_CPU_CAPABILITY="
          f"{os.environ.get('ATEN_CPU_CAPABILITY')}, ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA')}")
    if "512" in cap or "512" in isa or "AMX" in isa:
        print("the AVX2 limits did not take effect: the numeric tests would run on AVX-512/AMX kernels", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
