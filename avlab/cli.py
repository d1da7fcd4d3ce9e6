"""``avlab`` command line: synth, scan, train, eval, lowshot, sweep, lab, demo, methods, run-main."""
from __future__ import annotations

import argparse
import json
import os
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


def _method_option_fields():
    """Every option of every registered method, for the command line (validated per method)."""
    from dataclasses import MISSING, fields

    from avlab.methods import METHODS

    seen = {}
    for cls in METHODS.values():
        for f in fields(cls.Config):
            seen.setdefault(f.name, f)
    return [(f.name, f.default if f.default is not MISSING else None) for f in seen.values()]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_method_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("method options (each method accepts its own; see `avlab methods`)")
    for name, default in _method_option_fields():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            g.add_argument(flag, dest=f"m_{name}", type=_bool, metavar="BOOL")
        elif isinstance(default, tuple):
            g.add_argument(flag, dest=f"m_{name}", nargs="+", type=float if default and isinstance(default[0], float) else int)
        else:
            g.add_argument(flag, dest=f"m_{name}", type=type(default) if default is not None else str)


def _train(args) -> int:
    from avlab.methods.base import ModelConfig
    from avlab.train import TrainConfig, train

    method_args = {k[2:]: v for k, v in vars(args).items() if k.startswith("m_") and v is not None}
    if args.method == "cmpc" and "num_prototypes" in method_args:
        method_args["num_prototypes"] = [int(k) for k in method_args["num_prototypes"]]
    cfg = TrainConfig(method=args.method, data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, face_size=args.face_size, checkpoint_every=args.checkpoint_every,
                      workers=args.workers, init_from=args.init_from or "", train_fraction=args.train_fraction,
                      model=ModelConfig(args.face_model, args.voice_model, args.embed_dim, args.proj_dim),
                      method_args=method_args)
    cfg.method_config()  # validate the options against the method before any work
    run = train(cfg, resume=args.resume, progress=not args.quiet)
    print(f"trained {args.method}: {run}/model.safetensors (metrics.jsonl, config.json)")
    if args.eval:
        return _eval(argparse.Namespace(run=str(run), data=None, crops=5, quiet=args.quiet))
    return 0


def _eval(args) -> int:
    from avlab.eval.run_eval import evaluate_run, flatten

    res = evaluate_run(args.run, args.data, n_voice_crops=args.crops, progress=not args.quiet)
    flat = flatten(res["metrics"].get("unseen_unheard", res["metrics"]))
    for k in ("verification/U/auc", "verification/G/auc", "matching_1to2/v2f/U", "matching_1to2/f2v/U",
              "retrieval_map/v2f", "retrieval_map/f2v"):
        if k in flat:
            print(f"  unseen-unheard {k:24s} {flat[k]:.3f}")
    print(f"wrote {args.run}/eval.json and {args.run}/embeddings.npz")
    return 0


def _lowshot(args) -> int:
    from avlab.lowshot import run_lowshot

    pretrained = {Path(r).name: r for r in args.runs}
    summary = run_lowshot(pretrained, args.data, args.out, args.fractions, args.epochs, args.seed, not args.quiet,
                          batch_size=args.batch_size)
    print(json.dumps(summary["unseen_unheard"], indent=1))
    print(f"wrote {args.out}/lowshot.json")
    return 0


def _sweep(args) -> int:
    from avlab.sweep import run_sweep

    table = run_sweep(args.notebook, args.grid, args.out, workers=args.workers, timeout_s=args.timeout,
                      memory_gb=args.memory_gb, progress=not args.quiet)
    failed = table[table.status != "ok"]
    print(f"{len(table) - len(failed)} of {len(table)} runs ok; summary in {args.out}/sweep.csv")
    for row in failed.itertuples():
        print(f"FAILED {row.run}: {row.error}")
    return 0


def _lab(args) -> int:
    import subprocess

    from avlab.notebooks import NOTEBOOK_DIR

    return subprocess.call([sys.executable, "-m", "jupyterlab", f"--notebook-dir={NOTEBOOK_DIR}", "--ip=127.0.0.1"])


def _methods(args) -> int:
    from dataclasses import fields

    from avlab.methods import METHODS

    for name, cls in sorted(METHODS.items()):
        opts = ", ".join(f"{f.name}={f.default!r}" for f in fields(cls.Config))
        print(f"{name}: {opts}")
    return 0


def ensure_profile_set(data: Path, profile: str = "quick", workers: int = 2, progress: bool = True) -> Path:
    """Generate a talking-faces set of ``profile`` at ``data`` unless a complete one is there."""
    from avlab.data.synth.talking_faces import TalkingFacesConfig, generate

    data = Path(data)
    if (data / "oracle.json").exists() or (data.is_dir() and not (data / "synth_config.json").exists()
                                           and any(data.iterdir())):
        return data  # a finished synthetic set, or the user's own data
    print(f"generating the {profile} talking-faces set at {data} …", file=sys.stderr)
    return generate(TalkingFacesConfig.from_profile(profile), data, workers=workers, progress=progress)


def _run_main(args) -> int:
    """Quick set → data tour → CID and CMPC trained and evaluated (notebook 01) → report (04)."""
    from avlab.notebooks import execute
    from avlab.viz.report import comparison_table

    data = ensure_profile_set(Path(args.data), "quick", args.workers).resolve()
    out = Path(args.out).resolve()
    tour = execute("00_data_tour", out, {"data_dir": str(data), "out_dir": str(out)})
    runs = []
    for method in ("cid", "cmpc"):
        print(f"training and evaluating {method} ({args.epochs} epochs) …")
        execute("01_train", out / method, {"method": method, "data_dir": str(data), "out_dir": str(out / method),
                                           "epochs": args.epochs, "seed": args.seed})
        runs.append(str(out / method))
    report = execute("04_report", out, {"runs": runs, "out_dir": str(out)})
    table = comparison_table(runs, "unseen_unheard")
    print("\nunseen-unheard identities (chance = random embeddings through the same lists):")
    print(table.round(3).to_string())
    print("\nmain job done. Outputs:")
    print(f"  data set      {data}/ (meta.csv, lists/, oracle.json)")
    print(f"  data tour     {tour} (+ .html)")
    for r in runs:
        print(f"  run           {r}/ (01_train.ipynb + .html, config.json, metrics.jsonl, model.safetensors, eval.json)")
    print(f"  report        {report} (+ .html, report_*.csv, report_*.png)")
    return 0


def _demo_run(args) -> Path:
    """The run to demo: --run, else the newest finished run under --runs-dir, else a quick CMPC run
    trained (and evaluated) now on the quick synthetic set."""
    from avlab.demo.engine import newest_run

    if args.run:
        return Path(args.run)
    run = newest_run(args.runs_dir)
    if run is not None:
        print(f"demo: using the newest run, {run}", file=sys.stderr)
        return run
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    data = ensure_profile_set(Path(args.data), "quick", args.workers)
    out = Path(args.runs_dir) / "demo-cmpc"
    print(f"demo: no trained run under {args.runs_dir}/; training a quick CMPC run into {out} "
          f"({args.epochs} epochs, a few minutes on 2 cores) …", file=sys.stderr)
    cfg = TrainConfig(method="cmpc", data=str(data), out=str(out), epochs=args.epochs, workers=args.workers,
                      method_args={"cluster_warmup_epochs": max(1, args.epochs // 4)})
    train(cfg, resume=(out / "checkpoint.safetensors").exists())
    evaluate_run(out)
    return out


def _demo(args) -> int:
    from avlab.demo.app import ServeOptions, prepare_environment

    prepare_environment()  # before Gradio is imported
    from avlab.demo.app import launch
    from avlab.demo.engine import Matcher
    from avlab.demo.inputs import Limits

    auth = None
    if os.environ.get("AVLAB_DEMO_AUTH"):
        user, _, password = os.environ["AVLAB_DEMO_AUTH"].partition(":")
        if not user or not password:
            raise ValueError("AVLAB_DEMO_AUTH must be USER:PASSWORD")
        auth = (user, password)
    if args.share and auth is None:
        print("demo: sharing a public link with no login; set AVLAB_DEMO_AUTH=USER:PASSWORD to require one",
              file=sys.stderr)
    run = _demo_run(args)
    limits = Limits(max_bytes=int(args.max_upload_mb * 2**20))
    print(f"demo: loading {run} and embedding its test gallery …", file=sys.stderr)
    matcher = Matcher(run, gallery_identities=args.gallery_identities, limits=limits, progress=True)
    try:
        launch(matcher, ServeOptions(host=args.host, port=args.port, share=args.share, concurrency=args.concurrency,
                                     auth=auth), limits)
    except OSError as exc:  # Gradio's "Cannot find empty port …"
        raise ValueError(f"cannot serve on {args.host}:{args.port} ({exc}); choose another --port") from None
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

    s = sub.add_parser("train", help="train a method into a run folder")
    s.add_argument("--method", required=True, help="cid | cmpc | supervised (see `avlab methods`)")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--face-size", type=int, default=64)
    s.add_argument("--face-model", default="resnet_tiny")
    s.add_argument("--voice-model", default="resnet_tiny")
    s.add_argument("--embed-dim", type=int, default=128)
    s.add_argument("--proj-dim", type=int, default=None, help="shared projection head (default: none)")
    s.add_argument("--checkpoint-every", type=int, default=100)
    s.add_argument("--init-from", help="a finished run whose encoders initialise this one")
    s.add_argument("--train-fraction", type=float, default=1.0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    s.add_argument("--eval", action="store_true", help="evaluate when training ends")
    s.add_argument("--quiet", action="store_true")
    _add_method_options(s)
    s.set_defaults(func=_train)

    s = sub.add_parser("eval", help="evaluate a run on a dataset's lists → RUN/eval.json, RUN/embeddings.npz")
    s.add_argument("--run", required=True)
    s.add_argument("--data", help="dataset root (default: the run's training data)")
    s.add_argument("--crops", type=int, default=5, help="voice crops averaged per clip")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_eval)

    s = sub.add_parser("lowshot", help="fine-tune pre-trained runs and scratch with a fraction of identity labels")
    s.add_argument("--runs", nargs="*", default=[], help="pre-trained runs to compare (plus from scratch)")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--fractions", nargs="+", type=float, default=[0.05, 0.1])
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--batch-size", type=int, help="default: the pre-trained run's")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_lowshot)

    s = sub.add_parser("sweep", help="run a notebook over a parameter grid with papermill")
    s.add_argument("notebook", help="a notebook path or a name in notebooks/ (e.g. 01_train)")
    s.add_argument("--grid", required=True, help="YAML with 'fixed' and 'grid' sections")
    s.add_argument("--out", required=True)
    s.add_argument("--workers", type=int, default=1, help="runs executed at the same time")
    s.add_argument("--timeout", type=float, help="seconds before a run is stopped and marked failed")
    s.add_argument("--memory-gb", type=float, help="resident memory (GiB) before a run is stopped and marked failed")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_sweep)

    s = sub.add_parser("lab", help="JupyterLab on notebooks/ (bound to 127.0.0.1)")
    s.set_defaults(func=_lab)

    s = sub.add_parser("demo", help="Gradio demo of a trained run: voice → face, face → voice, run card")
    s.add_argument("--run", help="a finished run (default: the newest under --runs-dir; trains one if none)")
    s.add_argument("--runs-dir", default="runs")
    s.add_argument("--data", default="data/talking-faces-quick", help="where to generate the quick set if needed")
    s.add_argument("--epochs", type=int, default=20, help="epochs of the quick run trained when there is none")
    s.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes it to your network)")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (needs internet)")
    s.add_argument("--concurrency", type=int, default=2, help="requests computed at once (the rest queue)")
    s.add_argument("--max-upload-mb", type=float, default=50)
    s.add_argument("--gallery-identities", type=int, default=24, help="test identities in the gallery")
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=_demo)

    s = sub.add_parser("methods", help="list the registered methods and their options")
    s.set_defaults(func=_methods)

    s = sub.add_parser("run-main", help="the main job of `make run`")
    s.add_argument("--data", default="data/talking-faces-quick")
    s.add_argument("--out", default="runs/main")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_run_main)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        print(f"avlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
