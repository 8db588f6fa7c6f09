"""Input checks shared by every model: errors name the argument, what was expected and
what was received (docs/design.md#errors)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnlab.errors import InputError, InputTypeError


def describe(x: object) -> str:
    """A short description of a value for an error message."""
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}"
    return f"{type(x).__name__} {x!r}"


def check_tensor(name: str, x: object) -> torch.Tensor:
    """Raise TypeError unless ``x`` is a tensor."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"{name}: expected a torch.Tensor, received {describe(x)}")
    return x


def check_rank(name: str, x: torch.Tensor, ranks: Sequence[int], meaning: str = "") -> None:
    """Raise ValueError unless ``x.dim()`` is one of ``ranks``."""
    if x.dim() not in ranks:
        want = " or ".join(str(r) for r in ranks)
        extra = f" {meaning}" if meaning else ""
        raise InputError(
            f"{name}: expected a {want}-D tensor{extra}, received shape {tuple(x.shape)}"
        )


def check_shape(name: str, x: torch.Tensor, shape: Sequence[int | None]) -> None:
    """Raise ValueError unless ``x.shape`` matches ``shape`` (``None`` matches any size)."""
    ok = x.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name}: expected shape {want}, received shape {tuple(x.shape)}")


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Raise ValueError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, received {value!r}")
    return value


def check_probability(name: str, value: object) -> float:
    """Raise ValueError unless ``0 <= value < 1``."""
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise InputError(f"{name}: expected a number in [0, 1), received {value!r}")
    return float(value)


def check_lengths(lengths: object, batch_size: int, max_len: int, device) -> torch.Tensor:
    """Validate ``lengths`` (LongTensor[B], 1 <= lengths[b] <= T); return it on ``device``."""
    if not isinstance(lengths, torch.Tensor):
        if isinstance(lengths, (str, bytes)):
            raise InputTypeError(
                f"lengths: expected integers, one per sequence, received {describe(lengths)}"
            )
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputTypeError(
                f"lengths: expected integers, one per sequence, received {describe(lengths)}"
            ) from exc
    if lengths.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise InputTypeError(f"lengths: expected an integer tensor, received dtype {lengths.dtype}")
    if lengths.shape != (batch_size,):
        raise InputError(
            f"lengths: expected shape ({batch_size},) (one length per sequence), "
            f"received shape {tuple(lengths.shape)}"
        )
    if batch_size and (int(lengths.min()) < 1 or int(lengths.max()) > max_len):
        raise InputError(
            f"lengths: expected values in [1, {max_len}] (T = {max_len}), received "
            f"min {int(lengths.min())}, max {int(lengths.max())}"
        )
    return lengths.to(device=device, dtype=torch.long)
