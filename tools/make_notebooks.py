"""Writes the committed notebooks from the cell sources below (outputs empty, `parameters` tagged).

Edit here and re-run `python tools/make_notebooks.py`, or edit in JupyterLab and clear outputs;
tests/test_notebooks.py checks that committed notebooks carry no outputs.
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
"""),
    ("code", """
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import display
from avlab.viz import data_tour as tour

out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
meta = tour.load_meta(data_dir)
print(f"{meta.identity.nunique()} identities, {len(meta)} clips, {meta.duration.sum()/60:.1f} min of speech")
display(meta.head())
"""),
    ("md", "## Faces: a few clips per identity (middle frame)"),
    ("code", """
fig = tour.identity_grid(data_dir, meta, n_identities=n_identities)
fig.savefig(out / "identity_grid.png", dpi=120); plt.show()
"""),
    ("md", "## Voices: a log-mel spectrogram and the per-identity voice parameters"),
    ("code", """
clip = meta.path.iloc[0]
fig = tour.spectrogram_figure(data_dir, clip); fig.savefig(out / "spectrogram.png", dpi=120); plt.show()
voices = tour.voice_params_table(data_dir)
tour.write_table(voices, out / "voice_params.csv")
display(voices.groupby("gender")[["f0_hz", "formant_scale", "rate_wpm", "tilt_db_per_octave", "breathiness"]].describe().T.round(2))
"""),
    ("md", "## Lip-sync: mouth opening against the audio envelope"),
    ("code", """
fig = tour.lipsync_figure(data_dir, clip); fig.savefig(out / "lipsync.png", dpi=120); plt.show()
sample = meta.path.head(24)
r = [tour.lipsync_correlation(data_dir, p) for p in sample]
lipsync = meta.loc[sample.index, ["path"]].assign(r=r)
tour.write_table(lipsync, out / "lipsync.csv")
print(f"mean correlation over {len(r)} clips: {sum(r)/len(r):.2f}")
"""),
    ("md", "## Attributes and splits"),
    ("code", """
fig = tour.attribute_figure(meta); fig.savefig(out / "attributes.png", dpi=120); plt.show()
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

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    nbf.write(notebook(DATA_TOUR), HERE / "00_data_tour.ipynb")
    print("wrote", HERE / "00_data_tour.ipynb")
