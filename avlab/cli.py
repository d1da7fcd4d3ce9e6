"""``avlab`` command line: synth, scan, run-main (and, as they land, train / eval / sweep / demo)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _synth(args) -> int:
    from avlab.data.synth.talking_faces import TalkingFacesConfig, generate

    cfg = TalkingFacesConfig.from_profile(
        args.profile, identities=args.identities, videos_per_id=args.videos_per_id,
        utts_per_video=args.utts_per_video, coupling=args.coupling, size=args.size, seed=args.seed)
    out = generate(cfg, args.out, workers=args.workers, progress=not args.quiet)
    print(f"talking-faces set written to {out} (meta.csv, lists/, oracle.json, latents/)")
    return 0


def _scan(args) -> int:
    from avlab.data.voxceleb import scan

    report = scan(args.root, workers=args.workers, progress=not args.quiet)
    for bad in report["bad"]:
        print(f"BAD {bad['path']}: {bad['error']}: {bad['reason']}")
    print(f"{report['n_files'] - len(report['bad'])} of {report['n_files']} clips OK, {len(report['bad'])} bad")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if report["bad"] else 0


def ensure_quick_set(data: Path, workers: int) -> Path:
    """Generate the quick talking-faces set at ``data`` unless a complete one is there."""
    from avlab.data.synth.talking_faces import TalkingFacesConfig, generate

    if (data / "oracle.json").exists():
        print(f"using the existing synthetic set at {data}")
        return data
    print(f"generating the quick talking-faces set at {data} …")
    return generate(TalkingFacesConfig.from_profile("quick"), data, workers=workers)


def _run_main(args) -> int:
    from avlab.notebooks import execute

    data = ensure_quick_set(Path(args.data), args.workers)
    out = Path(args.out)
    nb = execute("00_data_tour", out, {"data_dir": str(data.resolve()), "out_dir": str(out.resolve())})
    print("\nmain job done. Outputs:")
    print(f"  data set       {data}/ (meta.csv, lists/, oracle.json)")
    print(f"  data tour      {nb} and {nb.with_suffix('.html')}")
    print(f"  figures/tables {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avlab", description="audio-visual self-supervised learning workbench")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate a synthetic benchmark")
    s.add_argument("benchmark", choices=["talking-faces"])
    s.add_argument("--out", required=True)
    s.add_argument("--profile", default="quick", choices=["quick", "standard"])
    s.add_argument("--identities", type=int)
    s.add_argument("--videos-per-id", type=int)
    s.add_argument("--utts-per-video", type=int)
    s.add_argument("--coupling", type=float, help="0 = voice independent of face, 1 = fully predictable (default 0.8)")
    s.add_argument("--size", type=int, help="face image side in pixels (even, 32..224)")
    s.add_argument("--seed", type=int)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_synth)

    s = sub.add_parser("scan", help="decode-check every clip under a dataset root and list bad files")
    s.add_argument("root")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--json", help="also write the report here")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_scan)

    s = sub.add_parser("run-main", help="the main job of `make run`")
    s.add_argument("--data", default="data/talking-faces-quick")
    s.add_argument("--out", default="runs/main")
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=_run_main)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"avlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
