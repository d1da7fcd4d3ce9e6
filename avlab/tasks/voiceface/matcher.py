"""The voice-face demo's model side: a trained run, its test gallery, and cross-modal ranking.

Everything here is plain Python over numpy and torch — no Gradio — so the ranking the web page
shows can be checked against the model directly. Scores are cosine similarities between the
evaluation's test-time-averaged, L2-normalised embeddings (5 voice windows; a face and its
mirror image), exactly as ``avlab eval`` computes them.

The test gallery comes from the run's dataset: the ``unseen_unheard`` identities (never seen in
training), one gallery clip per identity plus a few query clips, preferably from other videos.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avlab.data.features import MelConfig
from avlab.demo.inputs import Limits, UploadError, read_face, read_voice, voice_mels
from avlab.tasks.voiceface.protocol import embed_dataset, embed_faces, embed_voices

TEST_SPLIT = "unseen_unheard"


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


@dataclass
class Ranking:
    query: Item
    items: list[Item]  # best first
    scores: np.ndarray  # cosine similarity, same order
    notes: list[str] = field(default_factory=list)

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
        """(label, clip path) of each query clip, for a picker."""
        out = []
        for i in self.queries:
            c = self.ds.clips[i]
            out.append((f"{c.identity} · {c.video}/{c.utt}", c.path))
        return out

    def _test_index(self, path: str) -> int:
        for i in self.queries:
            if self.ds.clips[i].path == path:
                return i
        raise UploadError(f"{path!r} is not one of this demo's test clips")

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
        return Item(Path(path).name, emb, wave=wave, note=note)

    def face_item(self, path: str | os.PathLike) -> Item:
        from avlab.data.voxceleb import frame_to_tensor

        face, note = read_face(path, self.task_cfg.face_size, self.limits)
        emb = embed_faces(self.method, frame_to_tensor(face)[None])[0].numpy()
        return Item(Path(path).name, emb, face=face, note=note)

    def _query(self, upload, test_clip: str | None, modality: str) -> Item:
        if upload:
            return self.voice_item(upload) if modality == "voice" else self.face_item(upload)
        if not test_clip:
            raise UploadError(f"give a {modality}: pick a test clip or upload one")
        if self.ds is None:
            raise UploadError(f"no test clips ({self.missing_test_set}); upload a {modality}")
        return self._test_item(self._test_index(test_clip), modality)

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
        return Ranking(query, [gallery[i] for i in order], scores[order], notes)

    @torch.no_grad()
    def voice_to_face(self, voice=None, test_clip: str | None = None, faces=None) -> Ranking:
        """Faces (uploads, or the test gallery) ranked for a voice (an upload, or a test clip)."""
        return self.rank(self._query(voice, test_clip, "voice"), self._gallery(faces, "face"))

    @torch.no_grad()
    def face_to_voice(self, face=None, test_clip: str | None = None, voices=None) -> Ranking:
        """Voices (uploads, or the test gallery) ranked for a face (an upload, or a test clip)."""
        return self.rank(self._query(face, test_clip, "face"), self._gallery(voices, "voice"))
