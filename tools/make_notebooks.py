"""Writes the committed notebooks from the cell sources below (outputs empty, `parameters` tagged).

Edit here and re-run `python tools/make_notebooks.py`, or edit in JupyterLab and clear outputs;
tests/test_notebooks.py checks that the committed notebooks are what this script writes, without
outputs. Cells of kind "fig" are
tagged `figure`: the tests require each of them, executed, to show at least one image, plotly
figure or media element, in the notebook and in its HTML export.
"""
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(nbf.v4.new_markdown_cell(src.strip()))
        else:
            cell = nbf.v4.new_code_cell(src.strip())
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            elif kind == "fig":
                cell.metadata["tags"] = ["figure"]
            nb.cells.append(cell)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


DATA_TOUR = [
    ("md", """
# 00 · Data tour: a synthetic benchmark

What a synthetic set looks and sounds like — **talking-faces** (VoxCeleb-like) or **lip-words**
(LRW-like); the sections follow the set in `data_dir`. Both: the speakers, clips with sound, the
mouth against the audio. Talking-faces: faces per identity, voices, attributes. Lip-words: a mouth
strip per word with homophenes (words sharing one viseme sequence) side by side, the MFCC beside
the mouth opening, the homophene groups. Last, the **oracle**: what an ideal model reaches from the
true latents under the generator's own noise (the ceiling for learned models).
"""),
    ("params", """
data_dir = "data/talking-faces-quick"  # a synthetic set (avlab synth talking-faces|lip-words --out …)
out_dir = "runs/data-tour"             # figures and tables are written here
n_identities = 6                       # talking-faces: rows of the face grid
n_words = 10                           # lip-words: mouth strips, in homophene order
n_speakers = 6                         # faces with voice players
n_videos = 3                           # clips embedded as video (each ~40 kB at 64 px)
video_seconds = 3.0                    # longer clips are cut (remuxed) to this
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz import data_tour as tour, lipreading as lip
from avlab.viz.display import html, show

out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
kind = tour.benchmark_of(data_dir)  # "talking-faces" or "lip-words"
meta = tour.load_meta(data_dir)
print(f"{kind}: {tour.summary(meta)}")
display(meta.head())
"""),
    ("md", "## Meet the speakers: a face (lip-words: the mouth) and a voice each"),
    ("fig", """
html(tour.speakers_html(data_dir, meta, n_speakers))
"""),
    ("md", "## A few clips, with sound"),
    ("fig", """
html(tour.clips_html(data_dir, meta, n_videos, video_seconds))
"""),
    ("md", """
## Faces: a few clips per identity (talking-faces) · mouths: a strip per word (lip-words)

Lip-words: frames across each word, one speaker where possible, homophene groups together — their
rows should look alike (their viseme sequences are the same), other rows not.
"""),
    ("fig", """
if kind == "lip-words":
    show(lip.mouth_strips(data_dir, meta, n_words), out / "mouth_strips.png")
else:
    show(tour.identity_grid(data_dir, meta, n_identities=n_identities), out / "identity_grid.png")
"""),
    ("md", """
## Voices: a log-mel spectrogram and the per-identity voice parameters (talking-faces) · the MFCC beside the mouth opening (lip-words)
"""),
    ("fig", """
clip = meta.path.iloc[0]
if kind == "lip-words":
    show(lip.mfcc_mouth_figure(data_dir, meta.iloc[0]), out / "mfcc_mouth.png")
else:
    show(tour.spectrogram_figure(data_dir, clip), out / "spectrogram.png")
    voices = tour.voice_params_table(data_dir)
    tour.write_table(voices, out / "voice_params.csv")
    display(tour.readable(voices).groupby("gender")[["f0_hz", "formant_scale", "rate_wpm", "tilt_db_per_octave", "breathiness"]].describe().T.round(2))
"""),
    ("md", "## Lip-sync: mouth opening against the audio envelope"),
    ("fig", """
show(tour.lipsync_figure(data_dir, clip), out / "lipsync.png")
sample = meta.path.head(24)
r = [tour.lipsync_correlation(data_dir, p) for p in sample]
lipsync = meta.loc[sample.index, ["path"]].assign(r=r)
tour.write_table(lipsync, out / "lipsync.csv")
print(f"mean correlation over {len(r)} clips: {sum(r)/len(r):.2f}")
"""),
    ("md", "## Attributes and splits (talking-faces) · homophene groups, speakers and splits (lip-words)"),
    ("fig", """
if kind == "lip-words":
    homophenes = lip.homophene_table(data_dir)
    tour.write_table(homophenes, out / "homophenes.csv")
    display(homophenes[homophenes.n_words > 1])
    show(lip.set_figure(data_dir, meta), out / "words_speakers.png")
else:
    show(tour.attribute_figure(meta), out / "attributes.png")
"""),
    ("md", """
## Oracle: the ceiling under the generator's own noise

Talking-faces: verification AUC/EER (U: random negatives, G: same-gender negatives), 1:2 matching
in both directions, the 1:N curve and retrieval mAP, computed by the same protocol code as learned
models. Lip-words: the word accuracy of an ideal lip reader (`visual`: it sees every viseme, so
only homophenes defeat it) and of an ideal listener (`audio`), chance, and the chance of naming
the speaker (the reference for identity leakage).
"""),
    ("code", """
oracle = lip.oracle_table(data_dir) if kind == "lip-words" else tour.oracle_table(data_dir)
tour.write_table(oracle, out / "oracle.csv")
display(oracle.pivot(index="metric", columns="split", values="oracle").round(3))
"""),
]

TRAIN = [
    ("md", """
# 01 · Train and evaluate a method

Trains one registered method (`cid`, `cmpc`, `supervised` on voice-face; `adc-ssl`, `cid` on lip
reading …; `avlab methods` lists them) on a data folder of its task (talking-faces / VoxCeleb,
lip-words / LRW …) with a live loss plot, then runs the task's protocol. Everything lands in
`out_dir`: `config.json`, `metrics.jsonl`, checkpoints, `eval.json` and the task's outputs
(`embeddings.npz`, `lipreading.npz` …). Re-running with the same `out_dir` resumes (or reuses) the run.
"""),
    ("params", """
method = "cmpc"                         # cid | cmpc | supervised | adc-ssl … (`avlab methods`)
data_dir = "data/talking-faces-quick"   # generated with `profile` if missing
profile = "quick"                       # quick | standard (used only to generate data_dir)
benchmark = "talking-faces"             # the synthetic set generated when data_dir is missing (lip-words …)
out_dir = "runs/cmpc"
epochs = 30
batch_size = 32
lr = 2e-3
temperature = None                      # contrastive temperature (None: the method's default)
method_options = {}                     # other method options, e.g. {"short_weight": 1.0} (`avlab methods`)
num_prototypes = []                     # CMPC: K per granularity, e.g. [20, 40, 60]; empty: proportional to the data
cluster_warmup_epochs = 5               # CMPC: epochs before the first clustering
seed = 0
face_size = None                        # voice-face task option (pixels; None: the task's default, 64)
task_options = {}                       # other task options, e.g. {"crop_seconds": 1.0} (`avlab tasks`)
workers = None                          # data-loading processes (None: the machine's cores, at most 4)
val_every = 1                           # epochs between validation scores (best.safetensors is evaluated)
"""),
    ("code", """
from pathlib import Path
import pandas as pd
from IPython.display import display
from avlab.cli import ensure_profile_set
from avlab.train import TrainConfig, train, read_metrics
from avlab.eval.run_eval import evaluate_run
from avlab.viz import report
from avlab.viz.display import show

ensure_profile_set(Path(data_dir), profile, benchmark=benchmark)
method_args = dict(method_options)
if temperature is not None:
    method_args["temperature"] = temperature
if method == "cmpc":
    method_args["cluster_warmup_epochs"] = cluster_warmup_epochs
    if num_prototypes:
        method_args["num_prototypes"] = list(num_prototypes)
cfg = TrainConfig(method=method, data=data_dir, out=out_dir, epochs=epochs, batch_size=batch_size, lr=lr,
                  seed=seed, workers=workers, val_every=val_every, method_args=method_args,
                  task_args={**({"face_size": face_size} if face_size else {}), **task_options})
resume = Path(out_dir, "checkpoint.safetensors").exists()
print(("resuming" if resume else "starting"), method, "in", out_dir)
"""),
    ("md", "## Training (the plot updates every epoch)"),
    ("fig", """
run = train(cfg, resume=resume, on_epoch=report.LiveLossPlot(), progress=False)
# the live plot saw only this process's epochs: a resumed run also shows its whole curve
show(report.loss_figure(run), Path(run) / "loss.png", display=resume)
display(pd.DataFrame(read_metrics(run)).tail(3))
"""),
    ("md", "## Evaluation: the task's headline split (voice-face: unseen-unheard identities; lip reading: test), beside chance and the oracle"),
    ("fig", """
result = evaluate_run(run, progress=False)
task = report.task_of_run(run)
table = report.protocol_table(result)  # the task's headline split and key metrics
table.to_csv(Path(run) / f"protocol_{task.headline_split}.csv")
display(table.round(3))
show(report.protocol_figure(result), Path(run) / "protocol.png")
for split in report.other_splits(run):  # voice-face: seen-heard; lip reading: val
    print(split)
    display(report.protocol_table(result, split).round(3))
"""),
]

REPORT = [
    ("md", """
# 04 · Report: methods against the oracle

Compares evaluated runs on their task's protocol (for voice-face: unseen-unheard and seen-heard
identities), next to chance (an uninformative model's value of each metric) and the synthetic
set's oracle.
"""),
    ("params", """
runs = ["runs/main/cid", "runs/main/cmpc"]   # evaluated runs (eval.json present)
out_dir = "runs/main"
studies = []   # study JSON: runs/cmpc-claim/cmpc_claim.json (benchmarks/cmpc_claim.py), <out>/lowshot.json
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz import report
from avlab.viz.display import setup, show

setup()  # interactive figures; plotly.js is embedded here once, so the HTML export works offline
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
"""),
    ("md", "## The task's headline split (for voice-face: unseen-unheard identities)"),
    ("md", "Bars are the runs with their 95 % bootstrap interval over test identities; — is chance, ★ the oracle. Hover for exact values."),
    ("fig", """
task = report.task_of_run(runs[0])
headline = report.comparison_table(runs)  # the task's headline split and key metrics
headline.to_csv(out / f"report_{task.headline_split}.csv")
display(report.comparison_text(runs).rename(index=report.metric_label))
show(report.comparison_figure(headline, task.headline_split), out / f"report_{task.headline_split}.png", display=False)
report.comparison_plot(runs).show()
"""),
    ("md", "## The other splits (for voice-face: seen-heard, held-out clips of training identities)"),
    ("fig", """
for split in report.other_splits(runs[0]):
    table = report.comparison_table(runs, split)
    table.to_csv(out / f"report_{split}.csv")
    display(report.comparison_text(runs, split).rename(index=report.metric_label))
    report.comparison_plot(runs, split).show()
"""),
    ("md", "## 1:N matching (voice-face)"),
    ("fig", """
if task.name == "voice-face":
    show(report.matching_curve_figure(runs), out / "report_1toN.png", display=False)
    report.matching_curve_plot(runs).show()
"""),
    ("md", "## Training curves, all runs overlaid (colour: run, dash: loss term)"),
    ("fig", """
report.loss_plot(runs).show()
"""),
    ("md", "## Studies: the CMPC claim and low-shot (when their JSON is given in `studies`)"),
    ("code", """
for path in studies:
    table = report.study_table(path)
    table.to_csv(out / f"study_{Path(path).stem}.csv", index=False)
    print(path)
    display(table)
"""),
]

CLUSTERS = [
    ("md", """
# 02 · Cluster inspection: what CMPC's prototypes group

The latest clustering saved by a CMPC run (`clusters.safetensors`): cluster sizes and
concentrations, purity / NMI / ARI of each modality's clusters against identities and against
each attribute, how much voice and face clusters agree, a browser of one cluster's members, and
the clips that recalibration trusts least.
"""),
    ("params", """
run = "runs/main/cmpc"     # a CMPC run with clusters.safetensors
granularity = 0            # index into the granularities, 0 is the coarsest
modality = "face"          # browse voice or face clusters
out_dir = "runs/main/cmpc/inspect"
n_downweighted = 6
n_clusters_shown = 3       # largest clusters shown as galleries (kept in the HTML export)
max_members = 8            # faces + voices per gallery
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz import clusters as vc
from avlab.viz.display import html, show

out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
rc = vc.load_run_clusters(run)
print(f"clustering of epoch {rc.epoch}: K = {[len(c) for c in rc.voice.centroids]} over {len(rc.clips)} training clips")
"""),
    ("md", "## Sizes and concentrations"),
    ("fig", """
sizes = vc.cluster_table(rc, granularity); sizes.to_csv(out / "cluster_sizes.csv", index=False)
show(vc.sizes_figure(rc, granularity), out / "cluster_sizes.png")
"""),
    ("md", "## Clusters against identities and attributes"),
    ("code", """
scores = vc.cluster_metrics(rc); scores.to_csv(out / "cluster_metrics.csv", index=False)
display(scores.pivot_table(index=["modality", "k"], columns="against", values="nmi").round(3))
agree = vc.agreement(rc, granularity)
print(f"voice vs face clusters: NMI {agree['nmi']:.3f}, ARI {agree['ari']:.3f}")
"""),
    ("md", "## The largest clusters: their faces and voices"),
    ("fig", """
html(vc.cluster_galleries(rc, modality, granularity, n_clusters_shown, max_members))
"""),
    ("md", "## Browse any cluster (a live widget: needs a running kernel, absent from the HTML export)"),
    ("code", """
vc.cluster_browser(rc, modality, granularity, max_members)
"""),
    ("md", "## The clips recalibration down-weights most"),
    ("fig", """
low = vc.downweighted(rc, n_downweighted)
low.to_csv(out / "downweighted.csv", index=False)
html(vc.gallery_html(rc.data, low, extra=("rho", "weight")))
"""),
]

UMAP = [
    ("md", """
# 03 · Embeddings and prototypes (UMAP)

Voice and face embeddings of a run in one 2-D UMAP, with the CMPC prototypes overlaid. Colour
by identity / cluster / attribute / modality / split, hover a point to see its face, select
points to list them, join the voices and faces of one identity.

The first view comes at once: the run's cached layout, or else a PCA preview while the UMAP is
computed in the background (20,000 points on 2 busy cores: about 25 s in a fresh kernel, about a
minute the first time on a machine, when numba compiles it); the explorer's points move to the
UMAP when it is ready. The static figure below (and `umap.json` / `umap.html`, the HTML export) waits
for the UMAP. The layout is cached per run.
"""),
    ("params", """
run = "runs/main/cmpc"      # a run with embeddings.npz (avlab eval)
max_points = 5000           # voices + faces shown; more clips are subsampled at random
color_by = "identity"       # identity | cluster | gender | modality | split | age | size
join_identity = ""          # draw voice-face lines for this identity (empty: none)
out_dir = "runs/main/cmpc/umap"
seed = 0
"""),
    ("code", """
import json, time
from pathlib import Path
from avlab.viz import umap_view
from avlab.viz.display import setup

setup()  # interactive figures; plotly.js is embedded here once, so the HTML export works offline

out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
t0 = time.time()
points, pending = umap_view.first_view(run, max_points=max_points, seed=seed)
print(f"{len(points)} points, {points.attrs['layout']} layout in {time.time() - t0:.1f} s"
      + ("" if pending.done() else "; the UMAP is computing in the background"))
"""),
    ("md", "## Explore (live widgets: colour, voice-face lines, hovered face, selection; absent from the HTML export)"),
    ("code", """
data_root = json.loads(Path(run, "config.json").read_text())["data"]
umap_view.umap_explorer(points, data_root, pending=pending)
"""),
    ("md", "## The UMAP (static: written to `umap.json` / `umap.html`, shown in the HTML export)"),
    ("fig", """
points = pending.result()  # waits for the background layout, if it is still running
print(f"UMAP ready {time.time() - t0:.1f} s after the first view was asked for")
points.to_csv(out / "umap_points.csv", index=False)
fig = umap_view.umap_figure(points, color_by, join_identity or None)
fig.write_json(out / "umap.json")
fig.write_html(out / "umap.html", include_plotlyjs=True)
fig
"""),
]

EVALUATE = [
    ("md", """
# 05 · Evaluation report

The protocol of one or more evaluated runs of a task, every split next to chance and the oracle.
Voice-face: seen-heard and unseen-unheard identities (U and G lists, both directions), ROC curves,
the 1:N matching curve, retrieval precision-recall and queries to look at and listen to. Lip
reading: word accuracy (frozen, fine-tuned, low-shot), identity leakage and the modality probe,
and each run's confusions by homophene group (notebook 07 goes further).
"""),
    ("params", """
runs = ["runs/main/cid", "runs/main/cmpc"]   # evaluated runs of one task (eval.json + the task's outputs)
out_dir = "runs/main/evaluate"
n_queries = 3              # test queries shown with their nearest matches (faces and voice players)
top_k = 5                  # matches shown per query
write_projector = True     # TensorBoard projector of each run's test embeddings (<run>/tb/projector)
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.tasks.voiceface import projector
from avlab.viz import report, evaluate
from avlab.viz.display import html, setup, show

setup()  # interactive figures; plotly.js is embedded here once, so the HTML export works offline
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
task = report.task_of_run(runs[0])
voice_face = task.name == "voice-face"
print("task:", task.name)
"""),
    ("md", "## Protocol: each run beside chance and the oracle, with 95 % bootstrap intervals (over test identities or clips)"),
    ("fig", """
for split in [task.headline_split, *report.other_splits(runs[0])]:
    table = report.comparison_table(runs, split)
    table.to_csv(out / f"protocol_{split}.csv")
    display(report.comparison_text(runs, split).rename(index=report.metric_label))
    report.comparison_plot(runs, split).show()
"""),
    ("md", "## ROC curves (voice-face: verification U and G)"),
    ("code", """
if voice_face:
    show(evaluate.roc_figure(runs), out / "roc.png", display=False)
    evaluate.roc_plot(runs).show()
"""),
    ("md", "## 1:N matching and retrieval precision-recall (voice-face)"),
    ("code", """
if voice_face:
    show(report.matching_curve_figure(runs), out / "matching_1toN.png", display=False)
    report.matching_curve_plot(runs).show()
    show(evaluate.pr_figure(runs), out / "retrieval_pr.png", display=False)
    evaluate.pr_plot(runs).show()
"""),
    ("md", "## Look and listen: what each run retrieves for a few unseen-unheard queries (voice-face)"),
    ("code", """
if voice_face:
    for r in runs:
        html(evaluate.ranking_examples(r, n_queries, top_k, direction="v2f"))
        html(evaluate.ranking_examples(r, n_queries, top_k, direction="f2v"))
"""),
    ("md", "## Confusions by homophene group (lip reading; rows: true word, boxes: homophene groups)"),
    ("code", """
if task.name == "lip-reading":
    from avlab.viz import lipreading as lip

    for r in runs:
        lr = lip.load_lipreading(r)
        confusion = lip.confusion_table(lr.clips.word, lr.clips.predicted, lr.groups)
        print(Path(r).name, "·", lip.homophene_errors_text(lip.homophene_errors(confusion, lr.groups)))
        show(lip.confusion_figure(confusion, lr.groups), out / f"confusion_{Path(r).name}.png", display=False)
        lip.confusion_plot(confusion, lr.groups).show()
"""),
    ("md", "## TensorBoard projector (voice-face: test embeddings with face sprites)"),
    ("code", """
if voice_face and write_projector:
    for r in runs:
        print("projector:", projector.write_projector(r))
    print("open it with: avlab tb", " ".join(map(str, runs)))
"""),
]

SWEEP_SUMMARY = [
    ("md", """
# 06 · Sweep summary

Every run of an `avlab sweep`: its status (failed runs are marked, their executed notebooks kept
with the error), its parameters and its unseen-unheard metrics.
"""),
    ("params", """
sweep_dir = "runs/sweep-cid-vs-cmpc"
metric = "matching_1to2/v2f/U"
group_by = "method"
out_dir = ""                 # default: the sweep folder
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz.display import show
from avlab.viz.sweep import load_sweep, sweep_figure

out = Path(out_dir or sweep_dir)
table = load_sweep(sweep_dir)
print(f"{(table.status == 'ok').sum()} ok, {(table.status != 'ok').sum()} failed")
display(table)
"""),
    ("fig", """
show(sweep_figure(table, metric, group_by), out / "sweep_summary.png")
ok = table[table.status == "ok"]
if group_by in ok and metric in ok:
    summary = ok.groupby(group_by)[metric].agg(["mean", "std", "count"])
    summary.to_csv(out / "sweep_summary.csv"); display(summary.round(3))
"""),
]

LIPREADING = [
    ("md", """
# 07 · Lip reading: what the visual features read, and what they leak

ADC-SSL's claim (DESIGN §2.2): contrasting mouth video with its audio, while adversaries strip the
speaker and the modality, gives visual features that read **words** and not **speakers**. This
notebook looks at an evaluated lip-reading run (`avlab eval` wrote `eval.json`, `lipreading.npz`
and the training wrote `metrics.jsonl`) — nothing is re-trained:

* the confusions of the frozen front-end's back-end on the test words, grouped by **homophene
  class** (words with one viseme sequence, which no lip reader can tell apart);
* the word accuracy of each test speaker;
* identity leakage (a linear speaker probe on the frozen visual features) across runs — the
  ablations — beside chance and each run's word accuracy;
* a UMAP of the visual features coloured by word and by speaker, with numbers for the claim
  "clustered by word, mixed by speaker";
* the adversaries over training: the gradient-reversal strength λ and their accuracies.
"""),
    ("params", """
run = "runs/lip/adc-ssl"   # an evaluated lip-reading run (eval.json, lipreading.npz, metrics.jsonl)
ablations = []             # runs compared on identity leakage: run folders and/or folders of runs
                           # (benchmarks/lipreading.py --out); empty: the run itself
out_dir = ""               # figures and tables (default: <run>/lipreading)
max_points = 2000          # test clips in the UMAP (a seeded sample if more)
n_neighbors = 15           # UMAP neighbours
k = 10                     # neighbours for the word / speaker agreement scores
seed = 0
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz import lipreading as lip, report
from avlab.viz.display import setup, show

setup()  # interactive figures; plotly.js is embedded here once, so the HTML export works offline
out = Path(out_dir or Path(run) / "lipreading"); out.mkdir(parents=True, exist_ok=True)
lr = lip.load_lipreading(run)
protocol = report.protocol_table(lr.eval)
protocol.to_csv(out / "protocol_test.csv")
print(f"{lr.eval['method']} on {lr.data}: {len(lr.clips)} test clips, {len(lr.eval['words'])} words")
display(protocol.round(3))
"""),
    ("md", """
## Confusions, words grouped by homophene class

Rows: the true word, the share of its test clips given to each word. The red boxes are homophene
groups: confusions inside them are the data's (the ideal lip reader makes them too), outside them
the model's. Hover for counts.
"""),
    ("fig", """
confusion = lip.confusion_table(lr.clips.word, lr.clips.predicted, lr.groups)
confusion.to_csv(out / "confusion.csv")
print(lip.homophene_errors_text(lip.homophene_errors(confusion, lr.groups)))
show(lip.confusion_figure(confusion, lr.groups), out / "confusion.png", display=False)
lip.confusion_plot(confusion, lr.groups).show()
"""),
    ("md", "## Word accuracy per test speaker"),
    ("fig", """
speakers = lip.per_speaker_accuracy(lr.clips)
speakers.to_csv(out / "per_speaker.csv", index=False)
print(f"{len(speakers)} speakers, {speakers.clips.median():.0f} test clips each (median); "
      f"accuracy from {speakers.accuracy.min():.2f} to {speakers.accuracy.max():.2f}")
show(lip.per_speaker_figure(speakers, lr.chance, lr.clips.correct.mean(), lr.visual_oracle), out / "per_speaker.png")
"""),
    ("md", """
## Identity leakage across runs (the ablations)

A linear probe names the speaker from the frozen clip-level visual features (trained on half of
each speaker's clips, tested on the other half): lower is better, chance is 1 / speakers. Runs are
labelled by method and options; seeds of one configuration are pooled (bar: mean, dots: runs).
"""),
    ("fig", """
leakage = lip.leakage_table(lip.resolve_runs(ablations or [run]))
leakage.to_csv(out / "leakage.csv", index=False)
display(leakage.round(3))
show(lip.leakage_figure(leakage), out / "leakage.png")
"""),
    ("md", """
## The visual features: clustered by word, mixed by speaker?

The claim in numbers, on all test clips in the feature space (cosine): the share of each clip's
`k` nearest neighbours with the same word / speaker beside the share random neighbours would
have, and the silhouette (≈ 0: the label is mixed through). Then the UMAP, coloured both ways.
"""),
    ("fig", """
scores = lip.cluster_scores(lr, k)
scores.to_csv(out / "cluster_scores.csv", index=False)
display(scores.round(3))
print(lip.claim_text(scores, k))
points = lip.umap_points(lr, max_points, n_neighbors, seed)
points.to_csv(out / "umap_points.csv", index=False)
show(lip.umap_figure(points), out / "umap.png", display=False)
lip.umap_plot(points).show()
"""),
    ("md", """
## The adversaries over training

λ scales the reversed gradient the front-ends receive from the identity and modality
discriminators; their accuracies near 0.5 mean the features no longer tell them apart.
"""),
    ("fig", """
curves = lip.training_curves(run)
curves.to_csv(out / "training_curves.csv", index=False)
show(lip.adversary_figure(curves), out / "adversary.png")
"""),
]

ATTENTION = [
    ("md", """
# 08 · Attention: where a sound-localisation run looks, and what it listens to

CMAC (DESIGN §2.3) records four attention maps per clip: **α_v** (vision alone) and **β_v**
(audio-guided) over the frame, **α_a** (audio alone) and **β_a** (vision-guided) over the
spectrogram's frequency rows. `avlab eval` saved them per test clip in `attention.npz` (one layer,
the final weights); this notebook reads them — nothing is re-run. The frame and log-mel under each
map are decoded again by the task's own dataset at the run's settings, and every cIoU is the
protocol's (`avlab.eval.localisation`: the map resized and min-max normalised, the predicted
region outlined in white, the true box in green), beside the **centre prior**, the map that
always points at the middle.

* a table of per-clip cIoU (and, on synthetic sets, the frequency maps' mass in the true bands);
* chosen clips (by id, class, or worst / best cIoU): the frame with α_v and β_v, the spectrogram
  with α_a, β_a and the true bands;
* the per-class cIoU histograms and a gallery of the worst clips;
* a browser (run / checkpoint, class, clip, frame) — live, so absent from the HTML export.

Any method's run works (one without attention modules, e.g. `cid`, has only β_v: its
audio-visual similarity map). Runs passed together (checkpoints or variants, each evaluated into
its own folder) are compared in the first table and offered by the browser. Executed with
`avlab.notebooks.execute("08_attention", out, {...})` (or `avlab sweep`), an HTML export with
every figure is written beside the executed notebook.
"""),
    ("params", """
runs = ["runs/sound/cmac"]  # evaluated sound-localisation runs (attention.npz): the first is shown below,
                            # all are compared and offered by the browser (checkpoints or variants)
out_dir = ""                # figures and tables (default: <first run>/attention)
map_name = "beta_v"         # the map that orders clips and fills the gallery: beta_v | alpha_v
clips = []                  # clip ids to show, e.g. ["yy9IwGMxgxb_000094"]; empty: chosen by label / order
label = ""                  # choose among this class's clips (empty: any class)
order = "worst"             # worst | best cIoU of map_name
n_clips = 3                 # clips shown with overlays and spectrogram
n_failures = 8              # clips in the failure gallery
threshold = "value"         # cIoU reading: value (eval.json's default) | median (LVS / EZ-VSL code)
workers = 1                 # decoding processes, if the data's clip cache has to be rebuilt
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz import attention as att
from avlab.viz.display import show

loaded = [att.load_attention(r, workers=workers) for r in runs]
ar = loaded[0]
out = Path(out_dir or Path(ar.run) / "attention"); out.mkdir(parents=True, exist_ok=True)
print(att.describe(ar))
summary = att.run_summary(loaded, threshold)  # recomputed from the saved maps, eval.json's mean beside it
summary.to_csv(out / "runs.csv", index=False)
display(summary.round(3))
"""),
    ("md", "## Per clip: cIoU of each map beside the centre prior (and the frequency maps' mass in the true bands)"),
    ("code", """
table = att.clip_table(ar, threshold)
table.to_csv(out / "per_clip.csv", index=False)
display(table.drop(columns=["path", "x1", "y1", "x2", "y2"]).sort_values(f"ciou_{map_name}").round(3).head(10))
"""),
    ("md", """
## Chosen clips: the frame with α_v and β_v, the spectrogram with α_a, β_a and the true bands

White: the region the protocol predicts from the map; green: the true box (VGG-SS-style, on the
key frame). On the spectrogram the dashed green lines are the clip's true bands (synthetic sets);
beside it each frequency map over the same rows, the rows the protocol counts as in band shaded.
"""),
    ("fig", """
chosen = att.pick_clips(table, clips, label, order, n_clips, map_name)
print(f"{len(chosen)} clips:", ", ".join(chosen))
for file in chosen:
    show(att.overlay_figure(ar, file, threshold=threshold), out / f"overlay_{file}.png")
    show(att.spectrogram_figure(ar, file), out / f"spectrogram_{file}.png")
"""),
    ("md", "## cIoU per class (the dashed line: the 0.5 that cIoU@0.5 counts from)"),
    ("fig", """
classes = att.class_summary(table)
classes.to_csv(out / "per_class.csv", index=False)
display(classes.pivot(index="label", columns="map", values="mean_ciou").round(3))
show(att.ciou_histogram_figure(table), out / "ciou_per_class.png")
"""),
    ("md", "## Failures: the clips where the map localises worst"),
    ("fig", """
worst = att.failures(table, map_name, n_failures)
worst.to_csv(out / "failures.csv")
show(att.failure_gallery_figure(ar, worst, map_name, threshold), out / "failures.png")
"""),
    ("md", """
## Browse (a live widget: needs a running kernel, absent from the HTML export)

Run (checkpoint or variant), class, clip (worst cIoU first) and frame: the cached frames are
five, spread over the clip; the maps and the scored box belong to the middle one (the key frame),
other frames show how the scene moves under them (with their own box on synthetic sets).
"""),
    ("code", """
att.attention_browser(loaded, map_name, threshold)
"""),
]

# file name → cells; tests/test_notebooks.py checks that the committed notebooks are exactly these.
NOTEBOOKS = {
    "00_data_tour.ipynb": DATA_TOUR, "01_train.ipynb": TRAIN, "02_cluster_inspection.ipynb": CLUSTERS,
    "03_embedding_umap.ipynb": UMAP, "04_report.ipynb": REPORT, "05_evaluate.ipynb": EVALUATE,
    "06_sweep_summary.ipynb": SWEEP_SUMMARY, "07_lipreading.ipynb": LIPREADING, "08_attention.ipynb": ATTENTION,
}

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nbf.write(notebook(cells), HERE / name)
    print("wrote notebooks to", HERE)
