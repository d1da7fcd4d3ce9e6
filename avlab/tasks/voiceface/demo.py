"""The voice-face demo tabs: Voice → Face and Face → Voice rankings with a trained run."""
from __future__ import annotations

from avlab.data.uploads import FACE_EXTS, VOICE_EXTS, Limits
from avlab.tasks.demo_widgets import friendly, upload_paths
from avlab.tasks.voiceface.matcher import Matcher, Ranking

TOP_VOICES = 5  # audio players in the face → voice tab
RANK_HEADERS = ["rank", "name", "identity", "score", "true match"]


def _caption(rank: int, ranking: Ranking, k: int) -> str:
    """"1. 0.742 ✓ · name": rank, score and mark first, so a narrow tile still shows them."""
    item, score = ranking.items[k], ranking.scores[k]
    mark = " ✓" if ranking.is_match(item) else ""
    return f"{rank}. {score:.3f}{mark} · {item.name}"


AT_CHANCE = ("⚠ **This run is not better than chance** on unseen identities (see the run card): read this "
             "ranking as a random order.")


def _summary(ranking: Ranking, at_chance: bool = False) -> str:
    """Warnings first (out of domain, a run at chance), each its own paragraph; then the result and notes."""
    warnings = [f"**{w}**" for w in ranking.warnings] + ([AT_CHANCE] if at_chance else [])
    lines = []
    if ranking.query.identity:
        where = ranking.true_rank
        lines.append(f"**True match ranked {where} of {len(ranking.items)}.**" if where else
                     "The query's identity is not in this gallery.")
    else:
        lines.append("The true match is unknown for uploads.")
    lines += [f"- {n}" for n in ranking.notes]
    return "\n\n".join([*warnings, "\n".join(lines)])


class VoiceFaceTabs:
    """What the generic demo page asks of a task: an ``intro`` line and ``render(files)``."""

    def __init__(self, matcher: Matcher):
        from avlab.tasks.run_card import headline

        self.matcher = matcher
        measured = headline(matcher.run)
        self.at_chance = bool(measured and measured["beats_chance"] is False)
        no_test = f"*{matcher.missing_test_set}*" if matcher.missing_test_set else ""
        self.intro = (f"voice–face matching. Test clips are of identities the model never saw in training. "
                      f"Uploads go through the training preprocessing (face frame, log-mel). {no_test}")

    def render(self, files) -> None:
        """Create the two tabs inside the current ``gr.Blocks``."""
        import gradio as gr

        matcher, sr = self.matcher, self.matcher.mel.sample_rate
        choices = matcher.test_clip_choices() if matcher.ds is not None else []
        first = choices[0][1] if choices else None

        @friendly
        def voice_to_face(test_clip, voice, faces):
            ranking = matcher.voice_to_face(voice or None, test_clip, upload_paths(faces))
            gallery = [(files.image(it), _caption(r, ranking, r - 1)) for r, it in enumerate(ranking.items, 1)]
            return files.audio(ranking.query, sr), gallery, ranking.rows(), _summary(ranking, self.at_chance)

        @friendly
        def picked_face(test_clip):  # a thumbnail beside the picker (not in voice → face: it would give the answer)
            return files.image(matcher.test_item(test_clip, "face")) if test_clip and matcher.ds is not None else None

        @friendly
        def face_to_voice(test_clip, face, voices):
            ranking = matcher.face_to_voice(upload_paths(face)[0] if face else None, test_clip, upload_paths(voices))
            players = []
            for k in range(TOP_VOICES):
                if k < len(ranking.items):
                    players.append(gr.update(value=files.audio(ranking.items[k], sr),
                                             label=_caption(k + 1, ranking, k), visible=True))
                else:
                    players.append(gr.update(value=None, visible=False))
            return (files.image(ranking.query), ranking.rows(), *players, _summary(ranking, self.at_chance))

        face_types, voice_types = list(FACE_EXTS), list(VOICE_EXTS)
        with gr.Tab("Voice → Face"):
            with gr.Row():
                with gr.Column(scale=1):
                    vf_clip = gr.Dropdown(choices, value=first, label="Voice: a test clip")
                    vf_voice = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                        label="…or your own voice (upload or record; used instead of the test clip)")
                    vf_faces = gr.File(file_count="multiple", file_types=face_types,
                                       label="Faces to rank: images or videos (empty: the test gallery)")
                    vf_go = gr.Button("Rank faces for this voice", variant="primary")
                with gr.Column(scale=2):
                    vf_heard = gr.Audio(label="The voice used", interactive=False)
                    vf_gallery = gr.Gallery(label="Faces, best match first", columns=6, object_fit="contain",
                                            height="auto")
                    vf_table = gr.Dataframe(headers=RANK_HEADERS, label="Ranking (cosine similarity)",
                                            interactive=False)
                    vf_notes = gr.Markdown()
            vf_go.click(voice_to_face, [vf_clip, vf_voice, vf_faces], [vf_heard, vf_gallery, vf_table, vf_notes],
                        api_name="voice_to_face")
        with gr.Tab("Face → Voice"):
            with gr.Row():
                with gr.Column(scale=1):
                    fv_clip = gr.Dropdown(choices, value=first, label="Face: a test clip")
                    fv_thumb = gr.Image(value=picked_face(first), label="The picked clip's face", interactive=False,
                                        height=96, show_label=True)
                    fv_face = gr.File(file_types=face_types,
                                      label="…or your own face: an image or a video (used instead of the test clip)")
                    fv_voices = gr.File(file_count="multiple", file_types=voice_types,
                                        label="Voices to rank: audio or video files (empty: the test gallery)")
                    fv_go = gr.Button("Rank voices for this face", variant="primary")
                with gr.Column(scale=2):
                    fv_seen = gr.Image(label="The face the model saw", interactive=False, height=160)
                    fv_table = gr.Dataframe(headers=RANK_HEADERS, label="Ranking (cosine similarity)",
                                            interactive=False)
                    fv_players = [gr.Audio(label=f"{k + 1}.", interactive=False, visible=False)
                                  for k in range(TOP_VOICES)]
                    fv_notes = gr.Markdown()
            fv_clip.change(picked_face, [fv_clip], [fv_thumb], api_name=False)
            fv_go.click(face_to_voice, [fv_clip, fv_face, fv_voices], [fv_seen, fv_table, *fv_players, fv_notes],
                        api_name="face_to_voice")


def demo_tabs(run, limits: Limits = Limits(), gallery_identities: int = 24, progress: bool = False,
              **_ignored) -> VoiceFaceTabs:
    return VoiceFaceTabs(Matcher(run, gallery_identities=gallery_identities, limits=limits, progress=progress))
