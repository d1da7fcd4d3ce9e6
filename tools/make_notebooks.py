"""Writes the committed notebooks from the cell sources below (outputs empty, `parameters` tagged).

Edit here and re-run `python tools/make_notebooks.py`, or edit in JupyterLab and clear outputs;
tests/test_notebooks.py checks that committed notebooks carry no outputs. Cells of kind "fig" are
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
# 00 · Data tour: the talking-faces benchmark

What the synthetic VoxCeleb-like set looks and sounds like, how the mouth follows the speech, how
identities and attributes are distributed, and the **oracle**: what an ideal matcher reaches from
the true latents under the generator's own noise (the ceiling for learned models).
"""),
    ("params", """
data_dir = "data/talking-faces-quick"  # a talking-faces set (avlab synth talking-faces --out …)
out_dir = "runs/data-tour"             # figures and tables are written here
n_identities = 6                       # rows of the face grid
n_speakers = 6                         # faces with voice players
n_videos = 3                           # clips embedded as video (each ~40 kB at 64 px)
video_seconds = 3.0                    # longer clips are cut (remuxed) to this
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab.viz import data_tour as tour
from avlab.viz.display import html, show

out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
meta = tour.load_meta(data_dir)
print(f"{meta.identity.nunique()} identities, {len(meta)} clips, {meta.duration.sum()/60:.1f} min of speech")
display(meta.head())
"""),
    ("md", "## Meet the speakers: a face and a voice each"),
    ("fig", """
html(tour.speakers_html(data_dir, meta, n_speakers))
"""),
    ("md", "## A few clips, with sound"),
    ("fig", """
html(tour.clips_html(data_dir, meta, n_videos, video_seconds))
"""),
    ("md", "## Faces: a few clips per identity (middle frame)"),
    ("fig", """
show(tour.identity_grid(data_dir, meta, n_identities=n_identities), out / "identity_grid.png")
"""),
    ("md", "## Voices: a log-mel spectrogram and the per-identity voice parameters"),
    ("fig", """
clip = meta.path.iloc[0]
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
    ("md", "## Attributes and splits"),
    ("fig", """
show(tour.attribute_figure(meta), out / "attributes.png")
"""),
    ("md", """
## Oracle: the ceiling under the generator's own noise

Verification AUC/EER (U: random negatives, G: same-gender negatives), 1:2 matching in both
directions, the 1:N curve and retrieval mAP, computed by the same protocol code as learned models.
"""),
    ("code", """
oracle = tour.oracle_table(data_dir)
tour.write_table(oracle, out / "oracle.csv")
display(oracle.pivot(index="metric", columns="split", values="oracle").round(3))
"""),
]

TRAIN = [
    ("md", """
# 01 · Train and evaluate a voice-face method

Trains one registered method (`cid`, `cmpc`, `supervised` …) on a talking-faces or VoxCeleb-layout
set with a live loss plot, then runs the voice-face protocol on the set's lists. Everything lands
in `out_dir`: `config.json`, `metrics.jsonl`, checkpoints, `eval.json`, `embeddings.npz`. Re-running
with the same `out_dir` resumes (or reuses) the run.
"""),
    ("params", """
method = "cmpc"                         # cid | cmpc | supervised
data_dir = "data/talking-faces-quick"   # generated with `profile` if missing
profile = "quick"                       # quick | standard (used only to generate data_dir)
out_dir = "runs/cmpc"
epochs = 30
batch_size = 32
lr = 2e-3
temperature = 0.03
num_prototypes = []                     # CMPC: K per granularity, e.g. [20, 40, 60]; empty: proportional to the data
cluster_warmup_epochs = 5               # CMPC: epochs before the first clustering
seed = 0
face_size = 64                          # voice-face task option (pixels)
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

ensure_profile_set(Path(data_dir), profile)
method_args = {"temperature": temperature}
if method == "cmpc":
    method_args["cluster_warmup_epochs"] = cluster_warmup_epochs
    if num_prototypes:
        method_args["num_prototypes"] = list(num_prototypes)
cfg = TrainConfig(method=method, data=data_dir, out=out_dir, epochs=epochs, batch_size=batch_size, lr=lr,
                  seed=seed, workers=workers, val_every=val_every, method_args=method_args,
                  task_args={"face_size": face_size, **task_options})
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
    ("md", "## Evaluation: unseen-unheard identities, beside chance and the oracle"),
    ("fig", """
result = evaluate_run(run, progress=False)
table = report.protocol_table(result)  # the task's headline split and key metrics
table.to_csv(Path(run) / "protocol_unseen_unheard.csv")
display(table.round(3))
show(report.protocol_figure(result), Path(run) / "protocol.png")
display(report.protocol_table(result, "seen_heard").round(3))
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

The voice-face protocol for one or more runs: tables for seen-heard and unseen-unheard
identities (U and G lists, both directions) next to chance and the oracle, ROC curves, the 1:N
matching curve and retrieval precision-recall.
"""),
    ("params", """
runs = ["runs/main/cid", "runs/main/cmpc"]   # evaluated runs (eval.json, embeddings.npz)
out_dir = "runs/main/evaluate"
n_queries = 3              # test queries shown with their nearest matches (faces and voice players)
top_k = 5                  # matches shown per query
write_projector = True     # TensorBoard projector of each run's test embeddings (<run>/tb/projector)
"""),
    ("code", """
from pathlib import Path
from IPython.display import display
from avlab import tblog
from avlab.viz import report, evaluate
from avlab.viz.display import html, setup, show

setup()  # interactive figures; plotly.js is embedded here once, so the HTML export works offline
out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
"""),
    ("md", "## Protocol: each run beside chance and the oracle, 95 % bootstrap intervals over test identities"),
    ("fig", """
for split in ("unseen_unheard", "seen_heard"):
    table = report.comparison_table(runs, split)
    table.to_csv(out / f"protocol_{split}.csv")
    display(report.comparison_text(runs, split).rename(index=report.metric_label))
    report.comparison_plot(runs, split).show()
"""),
    ("md", "## ROC curves (verification U and G)"),
    ("fig", """
show(evaluate.roc_figure(runs), out / "roc.png", display=False)
evaluate.roc_plot(runs).show()
"""),
    ("md", "## 1:N matching and retrieval precision-recall"),
    ("fig", """
show(report.matching_curve_figure(runs), out / "matching_1toN.png", display=False)
report.matching_curve_plot(runs).show()
show(evaluate.pr_figure(runs), out / "retrieval_pr.png", display=False)
evaluate.pr_plot(runs).show()
"""),
    ("md", "## Look and listen: what each run retrieves for a few unseen-unheard queries"),
    ("fig", """
for r in runs:
    html(evaluate.ranking_examples(r, n_queries, top_k, direction="v2f"))
    html(evaluate.ranking_examples(r, n_queries, top_k, direction="f2v"))
"""),
    ("md", "## TensorBoard projector (test embeddings with face sprites)"),
    ("code", """
if write_projector:
    for r in runs:
        print("projector:", tblog.write_projector(r))
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

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    nbf.write(notebook(DATA_TOUR), HERE / "00_data_tour.ipynb")
    nbf.write(notebook(TRAIN), HERE / "01_train.ipynb")
    nbf.write(notebook(REPORT), HERE / "04_report.ipynb")
    nbf.write(notebook(CLUSTERS), HERE / "02_cluster_inspection.ipynb")
    nbf.write(notebook(UMAP), HERE / "03_embedding_umap.ipynb")
    nbf.write(notebook(EVALUATE), HERE / "05_evaluate.ipynb")
    nbf.write(notebook(SWEEP_SUMMARY), HERE / "06_sweep_summary.ipynb")
    print("wrote notebooks to", HERE)
