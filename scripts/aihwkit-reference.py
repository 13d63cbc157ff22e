"""Writes aihwkit 1.2.0's analog matrix-vector products (its pure-torch tile, `AnalogMVM.matmul`)
for a table of `IOParameters` with the noise off, in float64 and float32, to
`crates/xbquant-analog/tests/data/aihwkit_mvm.json.gz`: the reference the analog tile is tested
against. Tiled weights are computed as aihwkit's `TileModuleArray.forward` does: the weight split
along both axes into `get_split_sizes` pieces, each piece's product on its own, the output
pieces of one input split concatenated, and the input splits' outputs added in order.

aihwkit's torch tile needs none of its compiled extension, so the sdist's sources suffice:

    pip download aihwkit==1.2.0 --no-deps -d /tmp/aihwkit && tar xzf /tmp/aihwkit/aihwkit-1.2.0.tar.gz -C /tmp/aihwkit
    pip install torch scipy
    PYTHONPATH=/tmp/aihwkit/aihwkit-1.2.0/src python scripts/aihwkit-reference.py

With them: the statistics of outputs with the noise on, and of the PCM model's programmed,
drift and read conductances (`PCMLikeNoiseModel`, its defaults), over 100,000 draws each.

Every float is stored as the hex string of its bits (`float.hex`), so that nothing rounds.
"""

from __future__ import annotations

import gzip
import itertools
import json
import pathlib
import random
import sys
from unittest import mock

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates" / "xbquant-analog" / "tests" / "data" / "aihwkit_mvm.json.gz"


def import_aihwkit():
    """aihwkit's torch tile, with a stand-in for the compiled extension it does not use."""
    import aihwkit.simulator as simulator

    if "aihwkit.simulator.rpu_base" not in sys.modules:
        stand_in = mock.MagicMock()
        sys.modules["aihwkit.simulator.rpu_base"] = stand_in
        simulator.rpu_base = stand_in
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
    from aihwkit.simulator.parameters.io import IOParameters
    from aihwkit.simulator.tiles.analog_mvm import AnalogMVM
    from aihwkit.simulator.tiles.array import TileModuleArray

    return AnalogMVM, IOParameters, NoiseManagementType, BoundManagementType, TileModuleArray.get_split_sizes


def cases():
    """The IOParameters of the table: the defaults, each field alone off or changed, and a seeded
    sample of combinations."""
    grid = {
        "noise_management": ["none", "abs_max", "max", "constant"],
        "nm_thres": [0.0, 0.7],
        "bound_management": ["none", "iterative"],
        "inp_res": [1 / 126, 0.0, 256.0, 1 / 14],
        "out_res": [1 / 510, 0.0, 64.0, 1 / 30],
        "inp_bound": [1.0, 0.5, 2.0],
        "out_bound": [12.0, 3.0, 0.5, 0.0],
        "out_scale": [1.0, 2.5],
        "max_bm_factor": [1000, 4],
        "max_bm_res": [0.25, 0.05],
    }
    defaults = {k: v[0] for k, v in grid.items()}
    defaults["noise_management"] = "abs_max"
    defaults["bound_management"] = "iterative"
    table = [dict(defaults)]
    for key, values in grid.items():
        for v in values:
            if v != defaults[key]:
                table.append({**defaults, key: v})
    rng = random.Random(7)
    keys = list(grid)
    combos = list(itertools.islice(itertools.product(*grid.values()), 0, None, 97))
    for combo in rng.sample(combos, 60):
        table.append(dict(zip(keys, combo)))
    return table


SHAPES = [  # (rows, in, out, tile): a tile of 0 is one tile
    (5, 16, 7, 0),
    (1, 33, 4, 0),
    (8, 70, 12, 0),
    (6, 70, 9, (32, 4)),  # 3 x 3 tiles: inputs 24 + 23 + 23, outputs 3 + 3 + 3
]


DRAWS = 100_000


def noise_statistics(AnalogMVM, IOParameters, NM, BM):
    """The mean and standard deviation of each output over `DRAWS` products of one input vector
    (a batch of copies, bound management off so that each copy is an independent draw), for
    configurations with the noise on."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 24, generator=g, dtype=torch.float64)
    w = torch.randn(6, 24, generator=g, dtype=torch.float64) * 0.3
    configs = [
        {"inp_noise": 0.05, "out_noise": 0.06, "inp_res": 1 / 126, "out_res": 1 / 510, "inp_sto_round": False, "out_sto_round": False},
        {"inp_noise": 0.0, "out_noise": 0.2, "inp_res": 0.0, "out_res": 0.0, "inp_sto_round": False, "out_sto_round": False},
        {"inp_noise": 0.0, "out_noise": 0.0, "inp_res": 1 / 14, "out_res": 1 / 30, "inp_sto_round": True, "out_sto_round": True},
    ]
    out = []
    torch.manual_seed(0)
    for c in configs:
        io = IOParameters(
            is_perfect=False,
            noise_management=NM.ABS_MAX,
            bound_management=BM.NONE,
            inp_bound=1.0,
            out_bound=12.0,
            **c,
        )
        y = AnalogMVM.matmul(w, x.expand(DRAWS, -1).contiguous(), io, is_test=True)
        out.append(
            {
                "io": c,
                "draws": DRAWS,
                "x": [float(v).hex() for v in x.reshape(-1).tolist()],
                "w": [float(v).hex() for v in w.reshape(-1).tolist()],
                "out": 6,
                "mean": [float(v).hex() for v in y.mean(0).tolist()],
                "std": [float(v).hex() for v in y.std(0).tolist()],
            }
        )
    return out


PCM_TARGETS = [0.0, 0.5, 2.5, 10.0, 20.0, 25.0]
PCM_TIMES = [0.0, 1.0, 3600.0, 86400.0, 3.15e7]


def pcm_statistics():
    """The mean and standard deviation over `DRAWS` devices per target conductance of aihwkit's
    `PCMLikeNoiseModel` (defaults): programmed conductances, drift coefficients, and the
    conductances read at each of `PCM_TIMES` after programming (the whole chain)."""
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    model = PCMLikeNoiseModel()
    torch.manual_seed(1)
    out = []
    for target in PCM_TARGETS:
        g = torch.full((DRAWS,), target, dtype=torch.float64)
        prog = model.apply_programming_noise_to_conductance(g)
        nu = model.generate_drift_coefficients(g)
        record = {
            "g": target,
            "programmed": [float(prog.mean()).hex(), float(prog.std()).hex()],
            "nu": [float(nu.mean()).hex(), float(nu.std()).hex()],
            "read": {},
        }
        for t in PCM_TIMES:
            read = model.apply_drift_noise_to_conductance(prog, nu, t)
            record["read"][repr(t)] = [float(read.mean()).hex(), float(read.std()).hex()]
        out.append(record)
    return {"draws": DRAWS, "times": PCM_TIMES, "targets": out}


def main() -> None:
    AnalogMVM, IOParameters, NM, BM, split_sizes = import_aihwkit()
    records = []
    g = torch.Generator().manual_seed(11)
    for k, case in enumerate(cases()):
        rows, n_in, n_out, tile = SHAPES[k % len(SHAPES)]
        # Inputs of several scales: some rows small, some beyond the input bound, so that noise
        # and bound management both act; weights large enough that outputs clip.
        x = torch.randn(rows, n_in, generator=g, dtype=torch.float64) * (0.2 + 3 * torch.rand(rows, 1, generator=g, dtype=torch.float64))
        w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64) * 0.6
        if k % 5 == 0:
            x[0] = 0.0  # a zero vector: its noise-management scale is 0
        if k % 7 == 0:
            x[-1] = -x[-1].abs()  # all negative: "max" gives a negative scale
        io = IOParameters(
            is_perfect=False,
            inp_noise=0.0,
            out_noise=0.0,
            w_noise=0.0,
            inp_bound=case["inp_bound"],
            inp_res=case["inp_res"],
            out_bound=case["out_bound"],
            out_res=case["out_res"],
            out_scale=case["out_scale"],
            noise_management=getattr(NM, case["noise_management"].upper()),
            nm_thres=case["nm_thres"],
            bound_management=getattr(BM, case["bound_management"].upper()),
            max_bm_factor=case["max_bm_factor"],
            max_bm_res=case["max_bm_res"],
        )
        outputs = {}
        for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
            xs, ws = x.to(dtype), w.to(dtype)
            if tile:
                in_sizes = split_sizes(None, n_in, tile[0])
                out_sizes = split_sizes(None, n_out, tile[1])
                total = None
                for xi, wi in zip(xs.split(in_sizes, -1), ws.split(in_sizes, -1)):
                    pieces = [AnalogMVM.matmul(wo, xi, io, is_test=True) for wo in wi.split(out_sizes, 0)]
                    part = torch.cat(pieces, -1)
                    total = part if total is None else total.add_(part)
                y = total
            else:
                y = AnalogMVM.matmul(ws, xs, io, is_test=True)
            outputs[name] = [float(v).hex() for v in y.reshape(-1).tolist()]
        records.append(
            {
                "io": case,
                "rows": rows,
                "in": n_in,
                "out": n_out,
                "tile": list(tile) if tile else None,
                "x": [float(v).hex() for v in x.reshape(-1).tolist()],
                "w": [float(v).hex() for v in w.reshape(-1).tolist()],
                "y": outputs,
            }
        )
    noise = noise_statistics(AnalogMVM, IOParameters, NM, BM)
    pcm = pcm_statistics()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt") as f:
        json.dump({"aihwkit": "1.2.0", "torch": torch.__version__, "records": records, "noise": noise, "pcm": pcm}, f)
    print(f"{len(records)} cases written to {OUT}")


if __name__ == "__main__":
    main()
