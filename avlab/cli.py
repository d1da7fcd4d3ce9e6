"""``avlab`` command line: synth, scan, train, eval, lowshot, sweep, lab, demo, methods, run-main."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _benchmark_owner(benchmark: str):
    """The task that generates ``benchmark``."""
    from avlab.registry import TASKS

    for task in TASKS.values():
        if benchmark in task.benchmarks:
            return task
    known = sorted(b for t in TASKS.values() for b in t.benchmarks)
    raise ValueError(f"unknown benchmark {benchmark!r}; the tasks generate {known}")


SYNTH_OPTIONS = ("seed", "identities", "videos_per_id", "utts_per_video", "coupling", "size", "words", "speakers",
                 "speaker_split", "train_per_word", "val_per_word", "test_per_word", "roi", "classes",
                 "clips_per_class", "offscreen_fraction", "max_distractors")


def _synth(args) -> int:
    # Only the flags given; the benchmark's config refuses the ones it does not have, by name.
    options = {k: v for k, v in vars(args).items() if k in SYNTH_OPTIONS and v is not None}
    task = _benchmark_owner(args.benchmark)
    out = task.generate(args.benchmark, args.out, profile=args.profile, workers=args.workers,
                        progress=not args.quiet, **options)
    print(f"{args.benchmark} set (task {task.name}) written to {out}")
    return 0


def _scan(args) -> int:
    from avlab.data.voxceleb import scan

    report = scan(args.root, workers=args.workers, progress=not args.quiet, deep=args.deep)
    for bad in report["bad"]:
        print(f"BAD {bad['path']}: {bad['error']}: {bad['reason']}")
    for warned in report["warned"]:
        print(f"NOTE {warned['path']}: usable, but {'; '.join(warned['notes'])}")
    how = "every frame and sample decoded" if args.deep else "audio and first/last frames decoded; --deep: all"
    print(f"{report['n_files'] - len(report['bad'])} of {report['n_files']} clips OK, {len(report['bad'])} bad, "
          f"{len(report['warned'])} with notes ({how})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if report["bad"] else 0


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_dataclass_options(p: argparse.ArgumentParser, cls, dest_prefix: str, title: str) -> None:
    """One flag per field of an options dataclass (``num_prototypes`` → ``--num-prototypes``)."""
    from dataclasses import MISSING, fields

    g = p.add_argument_group(title)
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        flag, dest = "--" + f.name.replace("_", "-"), dest_prefix + f.name
        if isinstance(default, bool):
            g.add_argument(flag, dest=dest, type=_bool, metavar="BOOL", help=f"default {default}")
        elif isinstance(default, tuple):
            floats = isinstance(default[0], float) if default else "float" in str(f.type)  # e.g. tuple[float, ...]
            g.add_argument(flag, dest=dest, nargs="+", help=f"default {list(default)}", type=float if floats else int)
        else:
            g.add_argument(flag, dest=dest, type=type(default) if default is not None else str,
                           help=f"default {default}")


def _options_parser(method: str, task: str) -> argparse.ArgumentParser:
    """The flags of one method and one task, parsed after ``--method`` and ``--data`` are known,
    so two methods' options never share a namespace."""
    from avlab.registry import METHODS, TASKS

    p = argparse.ArgumentParser(prog=f"avlab train --method {method}", add_help=False, allow_abbrev=False)
    _add_dataclass_options(p, METHODS.get(method).Config, "m_", f"options of method {method!r}")
    _add_dataclass_options(p, TASKS.get(task).Config, "t_", f"options of task {task!r}")
    return p


def _parse_options(args, rest: list[str]) -> tuple[dict, dict]:
    """(method_args, task_args) from the flags left after the loop's own."""
    parser = _options_parser(args.method, args.task)
    opts, unknown = parser.parse_known_args(rest)
    if unknown:
        flags = sorted({u.split("=")[0] for u in unknown if u.startswith("--")}) or unknown
        names = [f.lstrip("-").replace("-", "_") for f in flags]
        raise ValueError(f"method {args.method!r} (task {args.task!r}) has no option(s) {names}; "
                         f"see `avlab train --method {args.method} --data {args.data} --help`")
    picked = {k: v for k, v in vars(opts).items() if v is not None}
    return ({k[2:]: v for k, v in picked.items() if k.startswith("m_")},
            {k[2:]: v for k, v in picked.items() if k.startswith("t_")})


def _encoders(pairs: list[str] | None) -> dict:
    out = {}
    for pair in pairs or []:
        modality, sep, model = pair.partition("=")
        if not sep or not modality or not model:
            raise ValueError(f"--encoder expects MODALITY=MODEL (e.g. face=resnet34), got {pair!r}")
        out[modality] = model
    return out


def _train(args, rest: list[str] | None = None) -> int:
    from avlab.data.manifest import detect_task
    from avlab.methods.base import ModelConfig
    from avlab.runs import TrainConfig
    from avlab.train import train

    if args.help and not (args.method and args.data):
        args.parser.print_help()
        return 0
    if args.nproc > 1 and not _under_torchrun():
        return _launch_torchrun(args.nproc, argv_after_train=args.argv)
    missing = [f"--{k}" for k in ("method", "data", "out") if not getattr(args, k) and not (k == "out" and args.help)]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")
    args.task = args.task or detect_task(args.data)
    if args.help:
        args.parser.print_help()
        print()
        _options_parser(args.method, args.task).print_help()
        return 0
    method_args, task_args = _parse_options(args, rest or [])
    cfg = TrainConfig(method=args.method, task=args.task, data=args.data, out=args.out, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr, warmup_epochs=args.warmup_epochs,
                      grad_clip=args.grad_clip, seed=args.seed, checkpoint_every=args.checkpoint_every,
                      workers=args.workers, threads=args.threads, device=args.device, amp=args.amp, log_every=args.log_every,
                      val_every=args.val_every,
                      init_from=args.init_from or "", train_fraction=args.train_fraction,
                      trunk_lr_scale=args.trunk_lr_scale, early_stop=args.early_stop, sampling=args.sampling,
                      model=ModelConfig(_encoders(args.encoder), args.default_encoder, args.embed_dim, args.proj_dim),
                      method_args=method_args, task_args=task_args)
    cfg.method_config(), cfg.task_config()  # validate against the method and the task before any work
    from avlab.registry import METHODS

    METHODS.get(cfg.method).check_fits(_spec_of_task(cfg.task))
    from avlab import dist

    run = train(cfg, resume=args.resume, progress=not args.quiet, stop_after_steps=args.stop_after_steps)
    main_process = dist.is_main()
    dist.teardown()
    if not main_process:  # under torchrun rank 0 reports and evaluates
        return 0
    print(f"trained {args.method}: {run}/model.safetensors (metrics.jsonl, config.json)")
    if args.eval and (run / "model.safetensors").exists():
        return _eval(argparse.Namespace(run=str(run), data=None, device=args.device, quiet=args.quiet, select="best"))
    return 0


def _under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ


def _launch_torchrun(nproc: int, argv_after_train: list[str]) -> int:
    """``avlab train --nproc N …`` = ``torchrun --standalone --nproc_per_node N -m avlab train …``."""
    import subprocess

    rest, skip = [], False
    for a in argv_after_train:  # drop --nproc N / --nproc=N
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "avlab", "train", *rest]
    print("launching:", " ".join(cmd[1:]), file=sys.stderr)
    return subprocess.call(cmd)


def _prepare(args, rest: list[str] | None = None) -> int:
    """``avlab prepare shards``: the data's task pre-decodes its samples into WebDataset shards;
    ``avlab prepare cache``: into the decoded-clip cache that training and evaluation read (so that
    several runs started together do not each decode the set)."""
    from avlab.data.manifest import detect_task
    from avlab.registry import TASKS

    if args.what == "shards" and not args.out:
        raise ValueError("avlab prepare shards needs --out (the folder the shards go to)")
    task_name = args.task or detect_task(args.data)
    task = TASKS.get(task_name)
    p = argparse.ArgumentParser(prog=f"avlab prepare {args.what}", add_help=False, allow_abbrev=False)
    _add_dataclass_options(p, task.Config, "t_", f"options of task {task_name!r}")
    opts, unknown = p.parse_known_args(rest or [])
    if unknown:
        raise ValueError(f"task {task_name!r} has no option(s) {unknown}")
    cfg = task.Config(**{k[2:]: tuple(v) if isinstance(v, list) else v for k, v in vars(opts).items() if v is not None})
    if args.what == "cache":
        parts = task.warm_cache(args.data, cfg, parts=args.splits, workers=args.workers, progress=not args.quiet)
        print(f"{args.data} (task {task_name}): " + (f"{', '.join(parts)} decoded into the cache"
                                                     if parts else "this task reads its files directly; no cache"))
        return 0
    out = task.prepare_shards(args.data, args.out, cfg, splits=tuple(args.splits) if args.splits else None,
                              shard_size=args.shard_size, workers=args.workers, progress=not args.quiet)
    print(f"shards of {args.data} (task {task_name}) written to {out} (shards.json lists them)")
    return 0


def _spec_of_task(task: str):
    from avlab.methods.base import DataSpec
    from avlab.registry import TASKS

    return DataSpec(task, dict(TASKS.get(task).modalities))


def _eval(args) -> int:
    from avlab.eval.run_eval import evaluate_run
    from avlab.runs import task_of

    res = evaluate_run(args.run, args.data, progress=not args.quiet, device=args.device, select=args.select)
    task = task_of(res)
    for k, v in task.headline(res).items():
        print(f"  {task.headline_split} {k:24s} {v:.3f}")
    print(f"wrote {args.run}/eval.json and the task's outputs")
    return 0


def _lowshot(args) -> int:
    from avlab.lowshot import Recipe, run_lowshot, table_text

    pretrained = {Path(r).name: r for r in args.runs}
    recipe = Recipe(probe_epochs=args.probe_epochs, finetune_epochs=args.epochs, scratch_epochs=args.epochs,
                    finetune_lr_scale=args.finetune_lr_scale, trunk_lr_scale=args.trunk_lr_scale,
                    early_stop=args.early_stop)
    summary = run_lowshot(pretrained, args.data, args.out, args.fractions, args.seeds, recipe, not args.quiet,
                          batch_size=args.batch_size)
    print(table_text(summary))
    print(f"wrote {args.out}/lowshot.json")
    return 0


def _sweep(args) -> int:
    from avlab.sweep import SlurmOptions, run_sweep

    slurm = SlurmOptions(args.partition, args.gpus, args.cpus, args.mem, args.time_min, args.array_parallelism)
    table = run_sweep(args.notebook, args.grid, args.out, workers=args.workers, timeout_s=args.timeout,
                      memory_gb=args.memory_gb, progress=not args.quiet, executor=args.executor, slurm=slurm)
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

    from avlab.registry import METHODS

    for name, cls in METHODS.items():
        opts = ", ".join(f"{f.name}={f.default!r}" for f in fields(cls.Config))
        tasks = ", ".join(cls.tasks) or "any two-modality task"
        print(f"{name} [{tasks}]: {opts}")
    return 0


def _tasks(args) -> int:
    from avlab.registry import TASKS

    for name, task in TASKS.items():
        print(f"{name}: {task.description}")
        print(f"  modalities  {', '.join(f'{m} ({s.kind})' for m, s in task.modalities.items())}")
        print(f"  benchmarks  {', '.join(task.benchmarks) or '-'}")
        print(f"  datasets    {', '.join(task.datasets) or '-'} — layout {task.layout}")
        print(f"  methods     {', '.join(task.methods())}")
        print(f"  metrics     {task.headline_split}: {', '.join(task.key_metrics)}")
        print(f"  notebooks   {', '.join(task.notebooks) or '-'}")
    return 0


def ensure_profile_set(data: Path, profile: str = "quick", workers: int = 2, progress: bool = True,
                       benchmark: str = "talking-faces") -> Path:
    """Generate ``benchmark`` at ``profile`` into ``data`` unless a complete set is there."""
    from avlab.data.manifest import MANIFEST

    data = Path(data)
    if (data / MANIFEST).exists() or (data / "oracle.json").exists() or (
            data.is_dir() and not (data / "synth_config.json").exists() and any(data.iterdir())):
        return data  # a finished synthetic set (the manifest is written last), or the user's own data
    print(f"generating the {profile} {benchmark} set at {data} …", file=sys.stderr)
    return _benchmark_owner(benchmark).generate(benchmark, data, profile=profile, workers=workers, progress=progress)


# The main job's recipe on the quick profile, chosen so that it learns within the job's 10 minutes on
# 2 cores (README, "The main job's recipe"): 32² faces, 1-s voice crops on 40 mel bands (a step costs
# a third of the 64² / 2-s / 64-band default), 10 epochs validated every 4 (12 and 20 did no better;
# 10 leave room for the other two stages), CMPC's prototypes after 4 warm-up epochs (after 3 of 10,
# CMPC scored 0.601 where after 4 it scored 0.720, on one set and seed).
MAIN_JOB = {"epochs": 10, "val_every": 4, "face_size": 32, "cluster_warmup_epochs": 4,
            "task_options": {"crop_seconds": 1.0, "n_mels": 40}}


def main_job_cluster_warmup(epochs: int) -> int:
    """CMPC's warm-up epochs (before prototypes) in a main-job run of ``epochs``: the recipe's, or
    half the run when it is shorter.

    >>> main_job_cluster_warmup(10), main_job_cluster_warmup(4)
    (4, 2)
    """
    return max(1, min(MAIN_JOB["cluster_warmup_epochs"], epochs // 2))


def check_quick_set(data: Path, benchmark: str = "talking-faces") -> None:
    """Refuse a synthetic set generated with an older quick profile (its numbers would not be the
    main job's); nothing is deleted. Benchmarks whose quick profile is not checked (lip-words) and
    the user's own data pass."""
    from dataclasses import asdict

    from avlab.data.synth.sounding_objects import SoundingObjectsConfig
    from avlab.data.synth.talking_faces import TalkingFacesConfig

    profile = {"talking-faces": TalkingFacesConfig, "sounding-objects": SoundingObjectsConfig}.get(benchmark)
    stamp = data / "synth_config.json"
    if profile is None or not stamp.exists():
        return
    have, want = json.loads(stamp.read_text()), json.loads(json.dumps(asdict(profile.from_profile("quick"))))
    differs = {k: f"{have.get(k)} (now {v})" for k, v in want.items() if have.get(k) != v}
    if differs:
        flag = next("--" + attr.replace("_", "-") for attr, b in STAGE_DATA.values() if b == benchmark)
        raise ValueError(f"{data} holds a quick set from an older profile ({differs}); move it away (or pass "
                         f"{flag} NEW_FOLDER) to generate the current one — nothing was deleted")


# The lip-reading stage of the main job: ADC-SSL on the quick lip-words set at 24² ROIs / 20² crops
# (a step costs ~60 % of the 32² / 28² default) for a few epochs, its epoch chosen on val.
LIP_JOB = {"epochs": 5, "val_every": 1, "task_options": {"roi_size": 24, "crop_size": 20}}


def _print_table(title: str, runs: list[str]) -> None:
    from avlab.viz.report import comparison_text, headline_sentence

    print(f"\n{title}")
    print(comparison_text(runs).to_string())
    print("\n" + headline_sentence(runs))


def _voice_face_stage(args, out: Path, execute) -> dict:
    """Quick talking-faces set → data tour → CID and CMPC trained and evaluated (01) → report (04)."""
    data = ensure_profile_set(Path(args.data), "quick", args.workers).resolve()
    check_quick_set(data)
    tour = execute("00_data_tour", out, {"data_dir": str(data), "out_dir": str(out)})
    runs = []
    epochs = args.epochs or MAIN_JOB["epochs"]
    for method in ("cid", "cmpc"):
        print(f"training and evaluating {method} ({epochs} epochs) …")
        execute("01_train", out / method, {"method": method, "data_dir": str(data), "out_dir": str(out / method),
                                           "epochs": epochs, "seed": args.seed, "workers": args.workers,
                                           "val_every": MAIN_JOB["val_every"],
                                           "cluster_warmup_epochs": main_job_cluster_warmup(epochs),
                                           "task_options": _stage_task_options("voice-face")})
        runs.append(str(out / method))
    report = execute("04_report", out, {"runs": runs, "out_dir": str(out)})
    return {"title": "voice-face · unseen-unheard identities — each method's figure with its 95 % interval over test "
                     "identities, beside chance (an uninformative model) and the oracle (the best any model can do "
                     "on this data):", "runs": runs,
            "outputs": [f"  data set      {data}/ (meta.csv, lists/, oracle.json)", f"  data tour     {tour} (+ .html)",
                        *(f"  run           {r}/ (01_train.ipynb + .html, config.json, metrics.jsonl, "
                          "model.safetensors, eval.json)" for r in runs),
                        f"  report        {report} (+ .html, report_*.csv, report_*.png)"]}


def _lip_reading_stage(args, out: Path, execute) -> dict:
    """Quick lip-words set → ADC-SSL trained and evaluated (01) → report (04)."""
    data = ensure_profile_set(Path(args.lip_data), "quick", args.workers, benchmark="lip-words").resolve()
    run = out / "adc-ssl"
    print(f"training and evaluating adc-ssl on lip-words ({LIP_JOB['epochs']} epochs) …")
    execute("01_train", run, {"method": "adc-ssl", "data_dir": str(data), "benchmark": "lip-words",
                              "out_dir": str(run), "epochs": LIP_JOB["epochs"], "seed": args.seed,
                              "workers": 0, "val_every": LIP_JOB["val_every"],  # decoded clips live in memory
                              "task_options": _stage_task_options("lip-reading")})
    report = execute("04_report", out, {"runs": [str(run)], "out_dir": str(out)})
    return {"title": "lip reading · word accuracy on test from the frozen visual front-end (95 % interval over test "
                     "clips), identity leakage (a speaker probe: lower is better) and the modality probe, beside "
                     "chance and the visual oracle (homophenes look alike):", "runs": [str(run)],
            "outputs": [f"  lip-words set {data}/ (lipread_mp4/, meta.csv, oracle.json)",
                        f"  run           {run}/ (01_train.ipynb + .html, eval.json, lipreading.npz)",
                        f"  report        {report} (+ .html, report_*.csv, report_*.png)"]}


# The sound-localisation stage: CMAC on the quick sounding-objects set (1,200 training clips of 48²
# frames with one silent distractor) for 10 epochs at lr 5e-3 on 40 mel bands, frames and sound not
# augmented, with stop-gradient targets and cross-modal negatives only: the CMAC variant that
# localised in every seed of the benchmark (the DESIGN defaults did not beat the centre prior;
# README, "Sound-source localisation"). 40 bands rather than 64 make a step a third cheaper.
LOC_JOB = {"epochs": 10, "lr": 5e-3, "batch_size": 32,
           "task_options": {"augment": False, "image_size": 48, "n_mels": 40},
           "method_options": {"stop_grad_target": True, "within_modal_negatives": False}}


def _localisation_stage(args, out: Path, execute) -> dict:
    """Quick sounding-objects set → CMAC trained and evaluated (01) → attention views (08) → report (04)."""
    data = ensure_profile_set(Path(args.loc_data), "quick", args.workers, benchmark="sounding-objects").resolve()
    check_quick_set(data, "sounding-objects")
    run = out / "cmac"
    print(f"training and evaluating cmac on sounding-objects ({LOC_JOB['epochs']} epochs, {LOC_JOB['method_options']}) …")
    execute("01_train", run, {"method": "cmac", "data_dir": str(data), "benchmark": "sounding-objects",
                              "out_dir": str(run), "epochs": LOC_JOB["epochs"], "lr": LOC_JOB["lr"],
                              "batch_size": LOC_JOB["batch_size"], "seed": args.seed, "workers": 0,
                              "val_every": 0, "task_options": _stage_task_options("sound-localisation"),
                              "method_options": LOC_JOB["method_options"]})
    annotated = json.loads((run / "eval.json").read_text()).get("n_annotated", 0)
    attention = (execute("08_attention", out, {"runs": [str(run)], "out_dir": str(out / "attention")}) if annotated
                 else "skipped: no test clip has a box (no vggss.json), so there is no localisation to draw")
    report = execute("04_report", out, {"runs": [str(run)], "out_dir": str(out)})
    return {"title": "sound localisation · where β_v (the sound-guided map) and α_v (vision alone) put the sound "
                     "on the test frames (cIoU@0.5 and AUC, 95 % interval over clips), frequency grounding and class "
                     "probes, beside chance (a centre-prior map; 1/classes) and the oracle (the true box at the "
                     "map's resolution):", "runs": [str(run)],
            "outputs": [f"  sounding-objects set {data}/ (video/, vggsound.csv, vggss.json, oracle.json)",
                        f"  run           {run}/ (01_train.ipynb + .html, eval.json, attention.npz)",
                        f"  attention     {attention} (+ .html, overlay_*.png, per_clip.csv)",
                        f"  report        {report} (+ .html, report_*.csv, report_*.png)"]}


MAIN_STAGES = {"voice-face": _voice_face_stage, "lip-reading": _lip_reading_stage,
               "sound-localisation": _localisation_stage}
DEFAULT_STAGES = tuple(MAIN_STAGES)  # the main job of `make run`
STAGE_DATA = {"voice-face": ("data", "talking-faces"), "lip-reading": ("lip_data", "lip-words"),
              "sound-localisation": ("loc_data", "sounding-objects")}  # each stage's set: its flag, its benchmark


def _stage_task_options(task: str) -> dict:
    """The stage's task options (they fix what its runs decode: the stage trains with them and the
    side-by-side job decodes with them beforehand)."""
    return {"voice-face": {"face_size": MAIN_JOB["face_size"], **MAIN_JOB["task_options"]},
            "lip-reading": LIP_JOB["task_options"], "sound-localisation": LOC_JOB["task_options"]}[task]


def _stage_record(out: Path, task: str) -> Path:
    """Where a finished stage leaves its table's title, runs and outputs (read back by the job
    that ran it side by side)."""
    return out / "stages" / f"{task}.json"


def _run_stage(task: str, args, out: Path) -> dict:
    from avlab.notebooks import execute

    record = MAIN_STAGES[task](args, out if task == "voice-face" else out / task, execute)
    path = _stage_record(out, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


def _stage_command(task: str, args, out: Path, share: int) -> list[str]:
    """``avlab run-main`` for one stage, with no more workers than fit its ``share`` of the cores
    beside the process itself."""
    workers = min(args.workers, share - 1)
    command = [sys.executable, "-m", "avlab", "run-main", "--tasks", task, "--out", str(out), "--seed", str(args.seed),
               "--workers", str(workers), "--data", str(Path(args.data).resolve()),
               "--lip-data", str(Path(args.lip_data).resolve()), "--loc-data", str(Path(args.loc_data).resolve())]
    return command + (["--epochs", str(args.epochs)] if args.epochs else [])


def _stages_side_by_side(args, out: Path) -> tuple[dict, list[str]]:
    """Each stage in its own process with its share of the cores (:mod:`avlab.stages`), started as
    soon as its set is generated and decoded into the cache that its runs read (with ``--workers``
    processes): the first stage trains while the next sets are made."""
    from avlab.parallel import usable_cores
    from avlab.registry import TASKS
    from avlab.stages import SideBySide, share_of

    share = share_of(usable_cores(), len(args.tasks))
    print(f"running the {len(args.tasks)} stages side by side ({share} core(s) each), each as soon as its data is "
          f"ready; their progress goes to {out / 'stages'}/<stage>.log", flush=True)
    for task in args.tasks:  # a quick set of an older profile is refused before anything starts
        flag, benchmark = STAGE_DATA[task]
        check_quick_set(Path(getattr(args, flag)), benchmark)
    with SideBySide(out / "stages", share, total=len(args.tasks)) as jobs:
        for task in args.tasks:
            flag, benchmark = STAGE_DATA[task]
            data = ensure_profile_set(Path(getattr(args, flag)), "quick", args.workers, benchmark=benchmark)
            print(f"decoding the {benchmark} clips that the {task} stage reads …", file=sys.stderr)
            TASKS.get(task).warm_cache(data, TASKS.get(task).Config(**_stage_task_options(task)),
                                       workers=args.workers)
            _stage_record(out, task).unlink(missing_ok=True)  # a record left by an earlier job is not this one's
            jobs.start(task, _stage_command(task, args, out, share))
        finished = jobs.wait()
    records, failed = {}, []
    for task in args.tasks:
        record = _stage_record(out, task)
        if finished[task].ok and record.exists():
            records[task] = json.loads(record.read_text())
            continue
        failed.append(task)
        how = finished[task].how if not finished[task].ok else "ended without its record"
        print(f"\nthe {task} stage {how}; the end of {finished[task].log}:\n{finished[task].log_tail()}",
              file=sys.stderr)
    return records, failed


def _run_main(args) -> int:
    """The main job: the stages of ``--tasks`` (side by side when there are several, unless
    ``--one-at-a-time``), each one's table, then where everything landed."""
    out = Path(args.out).resolve()
    args.tasks = list(dict.fromkeys(args.tasks))  # each stage once
    if len(args.tasks) > 1 and not args.one_at_a_time:
        records, failed = _stages_side_by_side(args, out)
        for record in records.values():
            _print_table(record["title"], record["runs"])
    else:
        records, failed = {}, []
        for task in args.tasks:
            records[task] = _run_stage(task, args, out)
            _print_table(records[task]["title"], records[task]["runs"])
    print(f"\nmain job ended; the {', '.join(failed)} stage(s) failed (above). Outputs of the others:" if failed
          else "\nmain job done. Outputs:")
    print("\n".join(line for record in records.values() for line in record["outputs"]))
    return 1 if failed else 0


def _demo_runs(args) -> list[Path]:
    """The runs to demo: --run, else the newest finished run of each task under --runs-dir, else a
    quick CMPC run trained (and evaluated) now on the quick synthetic set."""
    from avlab.runs import newest_runs

    if args.run:
        return [Path(r) for r in args.run]
    runs = newest_runs(args.runs_dir)
    if runs:
        print(f"demo: using the newest run of each task: {', '.join(map(str, runs))}", file=sys.stderr)
        return runs
    from avlab.eval.run_eval import evaluate_run
    from avlab.runs import TrainConfig
    from avlab.train import train

    data = ensure_profile_set(Path(args.data), "quick", args.workers)
    out = Path(args.runs_dir) / "demo-cmpc"
    print(f"demo: no trained run under {args.runs_dir}/; training a quick CMPC run into {out} "
          f"({args.epochs} epochs, a few minutes on 2 cores) …", file=sys.stderr)
    cfg = TrainConfig(method="cmpc", data=str(data), out=str(out), epochs=args.epochs, workers=args.workers,
                      batch_size=args.batch_size, val_every=MAIN_JOB["val_every"],
                      task_args=_stage_task_options("voice-face"),
                      method_args={"cluster_warmup_epochs": main_job_cluster_warmup(args.epochs)})
    train(cfg, resume=(out / "checkpoint.safetensors").exists())
    evaluate_run(out)
    return [out]


def _demo(args) -> int:
    from avlab.demo.app import ServeOptions, prepare_environment

    prepare_environment()  # before Gradio is imported
    from avlab.demo.app import launch, log_to_stderr, one_run_per_task, task_tabs
    from avlab.data.uploads import Limits

    log_to_stderr()
    auth = None
    if os.environ.get("AVLAB_DEMO_AUTH"):
        user, _, password = os.environ["AVLAB_DEMO_AUTH"].partition(":")
        if not user or not password:
            raise ValueError("AVLAB_DEMO_AUTH must be USER:PASSWORD")
        auth = (user, password)
    if args.share and auth is None:
        print("demo: sharing a public link with no login; set AVLAB_DEMO_AUTH=USER:PASSWORD to require one",
              file=sys.stderr)
    limits = Limits(max_bytes=int(args.max_upload_mb * 2**20))
    runs, tabs = [], []
    for run in one_run_per_task(_demo_runs(args)):
        print(f"demo: loading {run} and preparing its task's tabs …", file=sys.stderr)
        try:
            tabs.append(task_tabs(run, limits=limits, progress=True, gallery_identities=args.gallery_identities))
        except (OSError, ValueError, KeyError) as exc:
            if args.run:  # asked for by name: its failure is the answer
                raise
            print(f"demo: leaving {run} out of the page: {exc}", file=sys.stderr)
            continue
        runs.append(run)
    if not runs:
        raise ValueError(f"none of the runs under {args.runs_dir}/ could be demoed (above); pass one with --run")
    try:
        launch(runs, tabs, ServeOptions(host=args.host, port=args.port, share=args.share, concurrency=args.concurrency,
                                        auth=auth), limits)
    except OSError as exc:  # Gradio's "Cannot find empty port …"
        raise ValueError(f"cannot serve on {args.host}:{args.port} ({exc}); choose another --port") from None
    return 0


def _tb(args) -> int:
    """TensorBoard over the runs' ``tb/`` folders, each named by its run (runs without event files
    get them from ``metrics.jsonl`` first). The process becomes TensorBoard (exec), so Ctrl-C or a
    signal stops it with nothing left behind."""
    import os

    from avlab import tblog

    runs = tblog.expand_runs(args.runs)
    for run in runs:
        tblog.scalars_from_metrics(run)
    cmd = tblog.tensorboard_command(runs, args.host, args.port)
    print(f"TensorBoard on http://{args.host}:{args.port} for {', '.join(r.name for r in runs)} (Ctrl-C stops it)",
          flush=True)
    os.execv(cmd[0], cmd)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avlab", description="audio-visual self-supervised learning workbench")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate a synthetic benchmark")
    s.add_argument("benchmark", help="talking-faces | lip-words | sounding-objects (see `avlab tasks`)")
    s.add_argument("--out", required=True)
    s.add_argument("--profile", default="quick", choices=["quick", "standard"])
    s.add_argument("--seed", type=int)
    g = s.add_argument_group("talking-faces options")
    g.add_argument("--identities", type=int)
    g.add_argument("--videos-per-id", type=int)
    g.add_argument("--utts-per-video", type=int)
    g.add_argument("--coupling", type=float, help="0 = voice independent of face, 1 = fully predictable (default 0.8)")
    g.add_argument("--size", type=int, help="face image (talking-faces, even, 32..224) or frame side (sounding-objects, "
                                            "a multiple of 16) in pixels")
    g = s.add_argument_group("lip-words options")
    g.add_argument("--words", type=int, help="vocabulary size: the first N words (quick 30, standard 100)")
    g.add_argument("--speakers", type=int, help="quick 60, standard 300")
    g.add_argument("--speaker-split", choices=["shared", "disjoint"],
                   help="shared: every speaker in every split (LRW's convention, default); disjoint: 70/10/20 %% of "
                        "the speakers per split")
    g.add_argument("--train-per-word", type=int)
    g.add_argument("--val-per-word", type=int)
    g.add_argument("--test-per-word", type=int)
    g.add_argument("--roi", type=int, help="side of the encoded grey mouth ROI in pixels (default 32)")
    g = s.add_argument_group("sounding-objects options")
    g.add_argument("--classes", type=int, help="object classes (quick 10, standard 30)")
    g.add_argument("--clips-per-class", type=int)
    g.add_argument("--offscreen-fraction", type=float, help="clips whose sound comes from off screen (no box)")
    g.add_argument("--max-distractors", type=int, help="silent objects per clip: 1..N (quick 1, standard 3)")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_synth)

    s = sub.add_parser("scan", help="decode-check every clip under a dataset root and list bad files")
    s.add_argument("root")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--json", help="also write the report here")
    s.add_argument("--deep", action="store_true", help="decode every frame and sample (slower; default: the "
                                                       "audio and the first and last frames)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_scan)

    s = sub.add_parser("train", help="train a method into a run folder", add_help=False,
                       description="The method's and the task's own options follow --method and --data; "
                                   "`avlab train --method M --data D --help` lists them.")
    s.add_argument("--help", "-h", action="store_true", help="this help, with the method's and task's options")
    s.add_argument("--method", help="a registered method (see `avlab methods`); required")
    s.add_argument("--data", help="a data folder (its task is read from its manifest or layout); required")
    s.add_argument("--out", help="the run folder; required")
    s.add_argument("--task", help="the data's task when it cannot be detected (see `avlab tasks`)")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--min-lr", type=float, default=1e-4, help="where the cosine schedule ends")
    s.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up (CMPC's code: 10 %% of the epochs)")
    s.add_argument("--grad-clip", type=float, default=5.0, help="gradient-norm clipping (0: none, as CMPC's code)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--encoder", action="append", metavar="MODALITY=MODEL",
                   help="encoder of one modality, e.g. face=resnet34 (repeatable; see tests/test_models.py)")
    s.add_argument("--default-encoder", default="resnet_tiny", help="encoder of the other modalities")
    s.add_argument("--embed-dim", type=int, default=128)
    s.add_argument("--proj-dim", type=int, default=None, help="shared projection head (default: none)")
    s.add_argument("--checkpoint-every", type=int, default=100)
    s.add_argument("--init-from", help="a finished run whose encoders (and any weight of the same name and shape) "
                                       "initialise this one")
    s.add_argument("--train-fraction", type=float, default=1.0)
    s.add_argument("--trunk-lr-scale", type=float, default=1.0,
                   help="the encoders' trunks learn at lr × this; 0 freezes them (a linear probe)")
    s.add_argument("--early-stop", type=int, default=0,
                   help="stop after this many validations without a better score (0: off)")
    s.add_argument("--sampling", choices=["epoch", "replacement"], default="epoch",
                   help="epoch: every sample once an epoch; replacement: uniform draws, as CMPC's released code")
    s.add_argument("--workers", type=int, default=None, help="data-loading processes (default: cores, at most 4)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: its share of the cores less its workers, >= 1)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: CUDA when present)")
    s.add_argument("--amp", action="store_true", help="bfloat16 mixed precision on CUDA")
    s.add_argument("--log-every", type=int, default=20, help="steps between host syncs of the logged values")
    s.add_argument("--val-every", type=int, default=1,
                   help="epochs between validation scores; the best weights are kept as best.safetensors (0: off)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    s.add_argument("--nproc", type=int, default=1,
                   help="processes on this machine (launches torchrun; one per GPU, or gloo on CPU)")
    s.add_argument("--stop-after-steps", type=int, help=argparse.SUPPRESS)  # a 'kill' for resume tests
    s.add_argument("--eval", action="store_true", help="evaluate when training ends")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_train, parser=s)

    s = sub.add_parser("prepare", help="pre-decode a dataset: into WebDataset shards (fast, streaming-size training) "
                                       "or into the decoded-clip cache (so that the runs that follow start at once)",
                       description="Task options (e.g. --face-size) follow; they fix the preprocessing.")
    s.add_argument("what", choices=["shards", "cache"])
    s.add_argument("--data", required=True)
    s.add_argument("--out", help="the shards' folder (shards only)")
    s.add_argument("--task", help="the data's task when it cannot be detected")
    s.add_argument("--shard-size", type=int, default=256, help="samples per shard")
    s.add_argument("--splits", nargs="+", help="default: every split the task trains and evaluates on (cache: the "
                                               "parts the task names, e.g. train test)")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_prepare)

    s = sub.add_parser("eval", help="evaluate a run on a dataset's lists → RUN/eval.json, RUN/embeddings.npz")
    s.add_argument("--run", required=True)
    s.add_argument("--data", help="dataset root (default: the run's training data)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda")
    s.add_argument("--select", default="best", choices=["best", "last"],
                   help="best: the weights chosen on the validation split (when kept); last: the final ones")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_eval)

    s = sub.add_parser("lowshot", help="zero-shot vs linear probe vs fine-tuning vs scratch with a fraction of identity labels")
    s.add_argument("--runs", nargs="*", default=[], help="pre-trained runs to compare (plus from scratch)")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.05, 0.1])
    s.add_argument("--seeds", nargs="+", type=int, default=[0])
    s.add_argument("--probe-epochs", type=int, default=10, help="linear probe (trunks frozen)")
    s.add_argument("--epochs", type=int, default=20, help="fine-tuning and from-scratch epochs (at most: early stop)")
    s.add_argument("--finetune-lr-scale", type=float, default=0.1, help="fine-tuning lr = the pre-trained run's × this")
    s.add_argument("--trunk-lr-scale", type=float, default=0.1, help="the trunks' lr = the fine-tuning lr × this")
    s.add_argument("--early-stop", type=int, default=5, help="validations without a better score before stopping")
    s.add_argument("--batch-size", type=int, help="default: the pre-trained run's")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_lowshot)

    s = sub.add_parser("sweep", help="run a notebook over a parameter grid with papermill")
    s.add_argument("notebook", help="a notebook path or a name in notebooks/ (e.g. 01_train)")
    s.add_argument("--grid", required=True, help="YAML with 'fixed' and 'grid' sections")
    s.add_argument("--out", required=True)
    s.add_argument("--workers", type=int, default=1, help="runs executed at the same time")
    s.add_argument("--timeout", type=float, help="seconds before a run is stopped and marked failed")
    s.add_argument("--memory-gb", type=float, help="resident memory (GiB) before a run is stopped and marked failed")
    s.add_argument("--executor", default="local", choices=["local", "slurm", "submitit-local"],
                   help="local papermill processes (default), one SLURM job array via submitit, or submitit's "
                        "local executor (the SLURM path without a cluster)")
    g = s.add_argument_group("SLURM resources per grid point (--executor slurm)")
    g.add_argument("--partition")
    g.add_argument("--gpus", type=int, default=1)
    g.add_argument("--cpus", type=int, default=8)
    g.add_argument("--mem", type=float, default=32, help="GB")
    g.add_argument("--time-min", type=int, default=24 * 60, help="minutes before SLURM stops (and requeues) a job")
    g.add_argument("--array-parallelism", type=int, default=16, help="grid points running at once")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_sweep)

    s = sub.add_parser("lab", help="JupyterLab on notebooks/ (bound to 127.0.0.1)")
    s.set_defaults(func=_lab)

    s = sub.add_parser("demo", help="Gradio demo of trained runs: each run's task's tabs (voice → face, face → voice; "
                                    "lip reading …) and its run card")
    s.add_argument("--run", nargs="+", action="extend", metavar="RUN",
                   help="finished runs, one per task, each in a tab (default: the newest of each task under "
                        "--runs-dir; trains a quick CMPC run if there is none)")
    s.add_argument("--runs-dir", default="runs")
    s.add_argument("--data", default="data/talking-faces-quick", help="where to generate the quick set if needed")
    s.add_argument("--epochs", type=int, default=MAIN_JOB["epochs"], help="epochs of the quick run trained when there is none")
    s.add_argument("--batch-size", type=int, default=32, help="batch of the quick run trained when there is none")
    s.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes it to your network)")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (needs internet)")
    s.add_argument("--concurrency", type=int, default=2, help="requests computed at once (the rest queue)")
    s.add_argument("--max-upload-mb", type=float, default=50)
    s.add_argument("--gallery-identities", type=int, default=24, help="test identities in the gallery")
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=_demo)

    s = sub.add_parser("methods", help="list the registered methods, the tasks they fit and their options")
    s.set_defaults(func=_methods)

    s = sub.add_parser("tasks", help="list the registered tasks: data, benchmarks, methods, metrics")
    s.set_defaults(func=_tasks)

    s = sub.add_parser("run-main", help="the main job of `make run`")
    s.add_argument("--data", default="data/talking-faces-quick")
    s.add_argument("--out", default="runs/main")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--epochs", type=int, default=None, help=f"default {MAIN_JOB['epochs']}")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lip-data", default="data/lip-words-quick", help="the quick lip-words set (generated if missing)")
    s.add_argument("--loc-data", default="data/sounding-objects-quick",
                   help="the quick sounding-objects set (generated if missing)")
    s.add_argument("--tasks", nargs="+", default=list(DEFAULT_STAGES), choices=list(MAIN_STAGES),
                   help=f"the stages to run (default: {' '.join(DEFAULT_STAGES)})")
    s.add_argument("--one-at-a-time", action="store_true",
                   help="run the stages one after another, each with every core (default: side by side, each in "
                        "its own process with its share of the cores; README, \"How the stages share the machine\")")
    s.set_defaults(func=_run_main)

    s = sub.add_parser("tb", help="TensorBoard on 127.0.0.1 over runs (scalars, projector with face sprites)")
    s.add_argument("runs", nargs="+", help="run folders, or folders holding runs (e.g. runs/main)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes it to your network)")
    s.add_argument("--port", type=int, default=6006)
    s.set_defaults(func=_tb)
    return p


def main(argv: list[str] | None = None) -> int:
    from avlab.data.media import MediaError

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, rest = parser.parse_known_args(argv)
    args.argv = argv[1:]  # after the command name (train re-launches itself under torchrun)
    takes_task_flags = args.command in ("train", "prepare")  # flags that depend on --method and the data
    if rest and not takes_task_flags:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args, rest) if takes_task_flags else args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, MediaError) as exc:
        print(f"avlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
