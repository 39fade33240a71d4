"""A tiny open_clip CLIP for the attribute world (``world-clip``).

``probe.zoo.load("world-clip")`` returns ``(model, preprocess, tokenizer)`` like
``open_clip.create_model_and_transforms`` + ``open_clip.get_tokenizer``; ``model.encode_images01``
takes ``[B, 3, H, W]`` tensors in [0, 1] directly.
"""
from probe.clip.captions import (
                              COLOUR_NAMES,
                              WORDS,
                              ZERO_SHOT_TASKS,
                              captions,
                              colour_index,
)
from probe.clip.model import (
                              WORLD_CLIP_MODEL_CFG,
                              WORLD_CLIP_PREPROCESS_CFG,
                              WORLD_CLIP_VIT_VISION_CFG,
                              WorldCLIP,
                              build_model,
                              export_open_clip,
                              get_preprocess,
                              get_tokenizer,
                              load_zoo_clip,
)
from probe.clip.zeroshot import zero_shot_eval

__all__ = [
                              "COLOUR_NAMES",
                              "WORDS",
                              "WORLD_CLIP_MODEL_CFG",
                              "WORLD_CLIP_PREPROCESS_CFG",
                              "WORLD_CLIP_VIT_VISION_CFG",
                              "ZERO_SHOT_TASKS",
                              "WorldCLIP",
                              "build_model",
                              "captions",
                              "colour_index",
                              "export_open_clip",
                              "get_preprocess",
                              "get_tokenizer",
                              "load_zoo_clip",
                              "zero_shot_eval",
]
