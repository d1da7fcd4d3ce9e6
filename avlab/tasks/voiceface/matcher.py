"""The voice-face demo's model side: a trained run, its test gallery, and cross-modal ranking.

Everything here is plain Python over numpy and torch — no Gradio — so the ranking the web page
shows can be checked against the model directly. Scores are cosine similarities between the
evaluation's test-time-averaged, L2-normalised embeddings (5 voice windows; a face and its
mirror image), exactly as ``avlab eval`` computes them.

The test gallery comes from the run's dataset: the ``unseen_unheard`` identities (never seen in
training), one gallery clip per identity plus a few query clips, preferably from other videos.

An upload is marked *out of domain* when nothing the model has embedded resembles it: its cosine
similarity to its nearest clip of the same modality (every clip of the run's evaluation, from its
``embeddings.npz``, else the demo's test clips) is below what :data:`OOD_QUANTILE` of those clips
reach with their nearest clip *of another identity* — a stand-in for a new speaker of the kind the
model knows. Real photos and recordings shown to a model trained on synthetic faces fall far below.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avlab.data.features import MelConfig
from avlab.data.uploads import Limits, UploadError, read_face, read_voice, voice_mels
from avlab.tasks.voiceface.protocol import embed_dataset, embed_faces, embed_voices

TEST_SPLIT = "unseen_unheard"
OOD_QUANTILE = 0.01  # an upload less like the run's clips than 99 % of them are to another identity
OOD_REFERENCE = 2000  # at most this many clips set the threshold (an N × N similarity)


@dataclass
class Item:
    """One thing ranked or queried: a clip of the test set or an upload."""

    name: str
    embedding: np.ndarray
    identity: str | None = None  # known for test clips only
    face: np.ndarray | None = None  # RGB uint8, what the face encoder saw
    wave: np.ndarray | None = None  # 16 kHz mono float32
    note: str = ""
    key: str | None = None  # the clip path of a test clip: same key, same media
    warning: str = ""  # e.g. out of domain: shown first


@dataclass
class Ranking:
    query: Item
    items: list[Item]  # best first
    scores: np.ndarray  # cosine similarity, same order
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def is_match(self, item: Item) -> bool:
        """Same identity as the query (known only when both are test clips)."""
        return self.query.identity is not None and item.identity == self.query.identity

    @property
    def true_rank(self) -> int | None:
        """1-based rank of the query's own identity, if it is in the gallery."""
        return next((r for r, it in enumerate(self.items, 1) if self.is_match(it)), None)

    def rows(self) -> list[list]:
        """[rank, name, identity, score, true match] per item, best first."""
        return [[r, it.name, it.identity or "—", round(float(s), 4), "✓" if self.is_match(it) else ""]
                for r, (it, s) in enumerate(zip(self.items, self.scores), 1)]


def _pick_test_clips(clips, n_identities: int, queries_per_identity: int):
    """(gallery clip per identity, query clips): queries from other videos than the gallery's first."""
    by_id: dict[str, list] = {}
    for c in sorted(clips, key=lambda c: c.path):
        by_id.setdefault(c.identity, []).append(c)
    gallery, queries = [], []
    for identity in sorted(by_id)[:n_identities]:
        first, *rest = by_id[identity]
        gallery.append(first)
        rest.sort(key=lambda c: c.video == first.video)  # other videos first (stable sort keeps order)
        queries.extend(rest[:queries_per_identity])
    return gallery, queries


class Matcher:
    """A trained run ready to rank faces for a voice and voices for a face."""

    def __init__(self, run: str | os.PathLike, gallery_identities: int = 24, queries_per_identity: int = 2,
                 n_voice_crops: int = 5, limits: Limits = Limits(), progress: bool = False):
        from avlab.runs import load_run  # weights come from model.safetensors only

        self.run = Path(run)
        self.cfg, self.method = load_run(self.run)
        self.task_cfg = self.cfg.task_config()
        self.mel = MelConfig(n_mels=self.task_cfg.n_mels)
        self.n_voice_crops, self.limits = n_voice_crops, limits
        self.gallery: list[int] = []  # indices into self.ds
        self.queries: list[int] = []
        self.ds, self.voice_emb, self.face_emb = None, None, None
        self.missing_test_set = ""
        self._load_test_set(gallery_identities, queries_per_identity, progress)

    # --- the test set ---------------------------------------------------------------------------
    def _load_test_set(self, n_identities: int, queries_per_identity: int, progress: bool) -> None:
        from avlab.data.voxceleb import VoiceFaceDataset, index_dataset

        root = Path(self.cfg.data)
        if not root.is_dir():
            self.missing_test_set = f"the run's dataset ({root.name}) is not on this machine: uploads only"
            return
        clips = index_dataset(root, workers=self.cfg.n_workers, progress=progress).split(TEST_SPLIT)
        if not clips:
            self.missing_test_set = f"the run's dataset has no {TEST_SPLIT} clips: uploads only"
            return
        gallery, queries = _pick_test_clips(clips, n_identities, queries_per_identity)
        self.ds = VoiceFaceDataset(root, (TEST_SPLIT,), face_size=self.task_cfg.face_size,
                                   crop_seconds=self.task_cfg.crop_seconds, train=False, mel=self.mel, workers=self.cfg.n_workers, progress=progress,
                                   paths=[c.path for c in gallery + queries])
        position = {c.path: i for i, c in enumerate(self.ds.clips)}
        self.gallery = [position[c.path] for c in gallery]
        self.queries = [position[c.path] for c in queries]
        self.voice_emb, self.face_emb = embed_dataset(self.method, self.ds, self.n_voice_crops, progress=progress)

    def test_clip_choices(self) -> list[tuple[str, str]]:
        """(label, clip path) of each query clip, for a picker: "Speaker 3 · recording 2, clip 1 · 4.2 s
        (id00012)" — speakers numbered as in the gallery, recordings and clips within the speaker."""
        speakers = {self.ds.clips[i].identity: k for k, i in enumerate(self.gallery, 1)}
        videos: dict[str, list[str]] = {}
        for c in sorted(self.ds.clips, key=lambda c: c.path):
            videos.setdefault(c.identity, [])
            if c.video not in videos[c.identity]:
                videos[c.identity].append(c.video)
        out = []
        for i in self.queries:
            c = self.ds.clips[i]
            seconds = len(self.ds.audio(i)) / self.mel.sample_rate
            label = (f"Speaker {speakers.get(c.identity, '?')} · recording {videos[c.identity].index(c.video) + 1}, "
                     f"clip {c.utt.lstrip('0') or '0'} · {seconds:.1f} s ({c.identity})")
            out.append((label, c.path))
        return out

    def _test_index(self, path: str) -> int:
        for i in self.queries:
            if self.ds.clips[i].path == path:
                return i
        raise UploadError(f"{path!r} is not one of this demo's test clips")

    def test_item(self, path: str, modality: str) -> Item:
        """The query clip at ``path`` (one of :meth:`test_clip_choices`) as a ``modality`` item."""
        return self._test_item(self._test_index(path), modality)

    def _test_item(self, i: int, modality: str) -> Item:
        c = self.ds.clips[i]
        emb = self.voice_emb[i] if modality == "voice" else self.face_emb[i]
        return Item(f"{c.identity} · {c.video}/{c.utt}", emb, c.identity, face=self.ds.frame(i), wave=self.ds.audio(i),
                    key=c.path)

    # --- uploads --------------------------------------------------------------------------------
    def voice_item(self, path: str | os.PathLike) -> Item:
        wave, note = read_voice(path, self.limits, self.mel.sample_rate)
        mels = voice_mels(wave, self.task_cfg.crop_seconds, self.n_voice_crops, self.mel)
        emb = embed_voices(self.method, mels[None])[0].numpy()
        name = Path(path).name
        return Item(name, emb, wave=wave, note=note, warning=self.domain_warning(name, emb, "voice"))

    def face_item(self, path: str | os.PathLike) -> Item:
        from avlab.data.voxceleb import frame_to_tensor

        face, note = read_face(path, self.task_cfg.face_size, self.limits)
        emb = embed_faces(self.method, frame_to_tensor(face)[None])[0].numpy()
        name = Path(path).name
        return Item(name, emb, face=face, note=note, warning=self.domain_warning(name, emb, "face"))

    # --- out of domain --------------------------------------------------------------------------
    def domain_warning(self, name: str, embedding: np.ndarray, modality: str) -> str:
        """A warning when ``embedding`` is out of domain (see the module's docstring), else ""."""
        reference = self._domain().get(modality)
        if reference is None:
            return ""
        clips, threshold = reference
        nearest = float((clips @ embedding).max())
        if nearest >= threshold:
            return ""
        return (f"⚠ {name!r} is out of domain: its nearest {modality} among the {len(clips)} clips the model was "
                f"evaluated on has similarity {nearest:.2f}, below {threshold:.2f} (what {1 - OOD_QUANTILE:.0%} of "
                f"those clips reach with another identity's nearest clip); its scores here mean little.")

    def _domain(self) -> dict:
        """{modality: (reference embeddings, threshold)}, computed once."""
        if getattr(self, "_domain_cache", None) is None:
            self._domain_cache = {m: _threshold(emb, ids) for m, (emb, ids) in self._reference().items()}
        return self._domain_cache

    def _reference(self) -> dict:
        """{modality: (embeddings, identities)} of the run's evaluation clips, or of the demo's test clips."""
        path = self.run / "embeddings.npz"
        if path.exists():
            with np.load(path) as data:
                return {m: (data[m], data["identity"]) for m in ("voice", "face")}
        if self.ds is None:
            return {}
        ids = np.array([c.identity for c in self.ds.clips])
        return {"voice": (self.voice_emb, ids), "face": (self.face_emb, ids)}

    def _query(self, upload, test_clip: str | None, modality: str) -> Item:
        if upload:
            return self.voice_item(upload) if modality == "voice" else self.face_item(upload)
        if not test_clip:
            raise UploadError(f"give a {modality}: pick a test clip or upload one")
        if self.ds is None:
            raise UploadError(f"no test clips ({self.missing_test_set}); upload a {modality}")
        return self.test_item(test_clip, modality)

    def _gallery(self, uploads, modality: str) -> list[Item]:
        if uploads:
            if len(uploads) > self.limits.max_gallery_files:
                raise UploadError(f"{len(uploads)} files uploaded; at most {self.limits.max_gallery_files} can be ranked")
            make = self.voice_item if modality == "voice" else self.face_item
            return [make(p) for p in uploads]
        if self.ds is None:
            raise UploadError(f"no test gallery ({self.missing_test_set}); upload the {modality}s to rank")
        return [self._test_item(i, modality) for i in self.gallery]

    # --- ranking --------------------------------------------------------------------------------
    @staticmethod
    def rank(query: Item, gallery: list[Item]) -> Ranking:
        """Gallery items by cosine similarity to the query, best first (ties keep gallery order)."""
        scores = np.stack([g.embedding for g in gallery]) @ query.embedding
        order = np.argsort(-scores, kind="stable")
        notes = [x.note for x in [query, *gallery] if x.note]
        return Ranking(query, [gallery[i] for i in order], scores[order], notes,
                       [x.warning for x in [query, *gallery] if x.warning])

    @torch.no_grad()
    def voice_to_face(self, voice=None, test_clip: str | None = None, faces=None) -> Ranking:
        """Faces (uploads, or the test gallery) ranked for a voice (an upload, or a test clip)."""
        return self.rank(self._query(voice, test_clip, "voice"), self._gallery(faces, "face"))

    @torch.no_grad()
    def face_to_voice(self, face=None, test_clip: str | None = None, voices=None) -> Ranking:
        """Voices (uploads, or the test gallery) ranked for a face (an upload, or a test clip)."""
        return self.rank(self._query(face, test_clip, "face"), self._gallery(voices, "voice"))


def _threshold(emb: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(reference, the OOD_QUANTILE of each clip's similarity to its nearest clip of another identity);
    None with fewer than two identities."""
    if len(set(identities.tolist())) < 2:
        return None
    keep = np.random.default_rng(0).permutation(len(emb))[:OOD_REFERENCE]
    emb, identities = np.asarray(emb[keep], np.float32), identities[keep]
    sims = emb @ emb.T
    sims[identities[:, None] == identities[None, :]] = -np.inf
    return emb, float(np.quantile(sims.max(axis=1), OOD_QUANTILE))
