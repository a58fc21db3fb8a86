"""CLIP scores of tiny random CLIP models (transformers and open_clip) loaded through the real loaders."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from gsedit.errors import ModelMissingError
from gsedit.metrics.clip import CLIPScorer


@pytest.fixture(scope="module")
def hf_clip_dir(tmp_path_factory):
    """A 2-layer, 32-wide CLIP with a byte-level tokenizer and a 32 px image processor, saved as a folder."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab[token] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    tower = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
    }
    text = {
        "vocab_size": len(vocab),
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 1,
    }
    config = CLIPConfig(
        text_config={**tower, **text, "pad_token_id": 1},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def _images(seed: int, n: int = 3) -> torch.Tensor:
    return torch.rand(n, 40, 48, 3, generator=torch.Generator().manual_seed(seed))


def _reference_embeddings(folder):
    """Unit image / text embedding functions computed directly with transformers."""
    from transformers import CLIPModel, CLIPProcessor

    model, processor = (
        CLIPModel.from_pretrained(folder).eval(),
        CLIPProcessor.from_pretrained(folder),
    )

    def pooled(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def image(x):
        pixels = processor(
            images=list(x.permute(0, 3, 1, 2)), return_tensors="pt", do_rescale=False
        )["pixel_values"]
        return F.normalize(pooled(model.get_image_features(pixel_values=pixels)), dim=-1)

    @torch.no_grad()
    def text(t):
        tokens = processor(text=[t], return_tensors="pt", padding=True)
        return F.normalize(pooled(model.get_text_features(**tokens)), dim=-1)[0]

    return image, text


def test_directional_and_text_scores_follow_their_formulas(hf_clip_dir):
    scorer = CLIPScorer.from_pretrained(
        str(hf_clip_dir), batch_size=2
    )  # 2 splits the 3 views into chunks
    image, text = _reference_embeddings(hf_clip_dir)
    before, after = _images(1), _images(2)
    t0, t1 = "a photo of a cube", "a photo of a red cube"

    direction = scorer.directional_similarity(before, after, t0, t1)
    ref = F.cosine_similarity(image(after) - image(before), (text(t1) - text(t0))[None], dim=-1)
    torch.testing.assert_close(direction, ref, atol=1e-5, rtol=0)
    assert direction.abs().min() > 1e-3  # the tiny model separates the captions and the images

    torch.testing.assert_close(
        scorer.text_image_similarity(after, t1), image(after) @ text(t1), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        scorer.image_similarity(before, after),
        (image(before) * image(after)).sum(-1),
        atol=1e-5,
        rtol=0,
    )
    emb = image(after)
    torch.testing.assert_close(
        scorer.frame_similarity(after), (emb[:-1] * emb[1:]).sum(-1), atol=1e-5, rtol=0
    )


def test_direction_consistency_of_neighbouring_views(hf_clip_dir):
    scorer = CLIPScorer.from_pretrained(str(hf_clip_dir))
    image, _ = _reference_embeddings(hf_clip_dir)
    before, after = _images(3, n=4), _images(4, n=4)
    got = scorer.direction_consistency(before[:-1], after[:-1], before[1:], after[1:])
    delta = image(after) - image(before)
    torch.testing.assert_close(
        got, F.cosine_similarity(delta[:-1], delta[1:], dim=-1), atol=1e-5, rtol=0
    )
    # a view compared with itself changes in exactly its own direction
    torch.testing.assert_close(
        scorer.direction_consistency(before, after, before, after), torch.ones(4), atol=1e-5, rtol=0
    )


def test_open_clip_local_folder(tmp_path):
    import open_clip

    cfg = {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {
                "image_size": 32,
                "layers": 1,
                "width": 32,
                "head_width": 16,
                "patch_size": 8,
            },
            "text_cfg": {
                "context_length": 77,
                "vocab_size": 49408,
                "width": 32,
                "heads": 2,
                "layers": 1,
            },
        }
    }
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    model_id = f"open_clip:local-dir:{tmp_path}"
    with pytest.raises(ModelMissingError, match="no open_clip weights"):
        CLIPScorer.from_pretrained(model_id)

    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{tmp_path}").eval()
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    scorer = CLIPScorer.from_pretrained(model_id)
    images = (
        _images(5) * 255
    ).round() / 255  # exact under the uint8 PIL round trip of open_clip's transform
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path}")
    from torchvision.transforms.functional import to_pil_image

    with torch.no_grad():
        pixels = torch.stack([preprocess(to_pil_image(img.permute(2, 0, 1))) for img in images])
        ref_img = F.normalize(model.encode_image(pixels), dim=-1)
        ref_txt = F.normalize(
            model.encode_text(open_clip.get_tokenizer(f"local-dir:{tmp_path}")(["a red cube"])),
            dim=-1,
        )[0]
    torch.testing.assert_close(
        scorer.text_image_similarity(images, "a red cube"), ref_img @ ref_txt, atol=1e-5, rtol=0
    )


def test_missing_models_raise_model_missing(tmp_path, monkeypatch):
    with pytest.raises(ModelMissingError, match="--clip-model"):
        CLIPScorer.from_pretrained(str(tmp_path / "no_such_clip"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelMissingError, match="gsedit-tests/not-a-cached-clip"):
        CLIPScorer.from_pretrained("gsedit-tests/not-a-cached-clip")
    with pytest.raises(ModelMissingError, match="ViT-B-32"):
        CLIPScorer.from_pretrained(f"open_clip:ViT-B-32/{tmp_path / 'missing.pt'}")


def test_bad_inputs(hf_clip_dir):
    scorer = CLIPScorer.from_pretrained(str(hf_clip_dir))
    with pytest.raises(ValueError, match=r"expected images \[B, H, W, 3\]"):
        scorer.text_image_similarity(torch.rand(2, 3, 32, 32), "x")
    with pytest.raises(ValueError, match="open_clip:ARCH/PRETRAINED"):
        CLIPScorer.from_pretrained("open_clip:ViT-B-32")


def test_an_unanswering_hub_is_asked_once_and_loads_read_the_cache(unanswering_hub):
    """Without network and without HF_HUB_OFFLINE, each download try waits out the hub client's
    retries (27 s): one short request per process says so, and loads then read the cache only."""
    for _ in range(2):
        with pytest.raises(ModelMissingError, match=r"did not answer \(OSError: \[Errno -2\] Name or service"):
            CLIPScorer.from_pretrained("gsedit-tests/an-uncached-clip")
    assert len(unanswering_hub) == 1
