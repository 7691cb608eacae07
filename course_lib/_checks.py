"""Input validation shared by the public course_lib functions.

Every error names the argument, what was expected and what was received, and
when a likely mistake is recognisable, says what it probably is.
"""

from __future__ import annotations

import torch

__all__ = ["check_tensor", "check_token_ids", "check_probability", "check_bool_mask", "check_mask",
           "check_same_device"]


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)} on {value.device}"
    return f"{type(value).__name__} {value!r}"[:120]


def check_tensor(name: str, value: object, *, ndim: int | tuple[int, ...] | None = None) -> None:
    """Raise TypeError/ValueError unless `value` is a tensor with one of the allowed ranks."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(value)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if value.dim() not in allowed:
            wanted = " or ".join(f"{n}-D" for n in allowed)
            raise ValueError(f"{name}: expected a {wanted} tensor, got {_describe(value)}")



def check_token_ids(name: str, ids: object, *, vocab_size: int | None = None) -> None:
    """Raise unless `ids` is a 2-D integer tensor [B, L] of ids in 0..vocab_size-1 (if given)."""
    check_tensor(name, ids, ndim=2)
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer token ids, got a {ids.dtype} tensor")
    if vocab_size is not None and ids.numel() \
            and not 0 <= int(ids.min()) <= int(ids.max()) < vocab_size:
        raise ValueError(f"{name}: expected ids in 0..{vocab_size - 1}, got values in "
                         f"{int(ids.min())}..{int(ids.max())}")


def check_probability(name: str, value: object) -> float:
    """Return `value` as a float, or raise ValueError unless it is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)

def _reject_non_bool(name: str, mask: torch.Tensor, *, float_ok: bool) -> None:
    if mask.dtype == torch.bool:
        return
    if mask.dtype.is_floating_point:
        # All zeros is a valid additive mask (nothing blocked); 0/1 with a 1 is the mistake.
        zero_one = bool(((mask == 0) | (mask == 1)).all()) and bool((mask == 1).any())
        if float_ok and not zero_one:
            return
        if zero_one:
            raise TypeError(
                f"{name}: got a float 0/1 mask ({mask.dtype}). Float masks are ADDED to the "
                "scores, so 1.0 does not block anything. Use a bool mask (True = blocked), "
                "e.g. mask.bool(), or an additive mask from course_lib.masks.to_additive."
            )
        raise TypeError(
            f"{name}: expected a bool mask (True = blocked), got {_describe(mask)}. "
            "An additive float mask is not accepted here."
        )
    raise TypeError(
        f"{name}: got an integer mask ({mask.dtype}); expected a bool mask (True = blocked). "
        "If it is a Hugging Face attention_mask (1 = keep, 0 = pad) use "
        "course_lib.masks.from_hf(mask); if 1 already means blocked use mask.bool()."
    )


def check_bool_mask(name: str, mask: object, *, ndim: int | tuple[int, ...] | None = None) -> None:
    """A bool mask in the nn.MultiheadAttention convention: True = blocked."""
    check_tensor(name, mask, ndim=ndim)
    _reject_non_bool(name, mask, float_ok=False)


def check_mask(name: str, mask: object, *, ndim: int | tuple[int, ...] | None = None) -> None:
    """A bool mask (True = blocked) or an additive float mask (0 = allowed, -inf = blocked)."""
    check_tensor(name, mask, ndim=ndim)
    _reject_non_bool(name, mask, float_ok=True)


def check_same_device(name: str, value: torch.Tensor, reference_name: str, reference: torch.Tensor):
    if value.device != reference.device:
        raise ValueError(
            f"{name}: is on {value.device} but {reference_name} is on {reference.device}; "
            f"move it with {name}.to({reference_name}.device)"
        )
