"""The warm-up fused softmax kernel (kernels/fused_softmax.py) against torch.softmax, through the
interpreter on CPU."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from roadmap_lib.kernels import HAVE_TRITON, INTERPRET, MISSING_TRITON, softmax

pytestmark = pytest.mark.kernels

if not HAVE_TRITON:
    pytest.skip(f"the Triton kernels cannot run here: {MISSING_TRITON}", allow_module_level=True)

if not INTERPRET and not torch.cuda.is_available():
    pytest.skip(
        "roadmap_lib.kernels was imported without TRITON_INTERPRET=1 before this module could set "
        "it; run `TRITON_INTERPRET=1 python -m pytest -m kernels tests/`",
        allow_module_level=True,
    )

DEVICE = "cuda" if torch.cuda.is_available() and not INTERPRET else "cpu"


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("shape", [(3, 1), (5, 7), (2, 3, 100), (4, 128)])
def test_forward_backward_match_torch(shape, dtype, tol):
    g = torch.Generator().manual_seed(sum(shape))
    x = (3 * torch.randn(shape, generator=g)).to(DEVICE, dtype).requires_grad_()
    dy = torch.randn(shape, generator=g).to(DEVICE, dtype)
    y = softmax(x)
    y.backward(dy)
    x64 = x.detach().double().requires_grad_()
    y64 = torch.softmax(x64, -1)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert (y.double() - y64).abs().max().item() < tol
    assert (x.grad.double() - x64.grad).abs().max().item() < tol * 5


def test_large_inputs_do_not_overflow():
    x = torch.tensor([[1000.0, 1001.0, -1000.0]], device=DEVICE)
    y = softmax(x)
    assert torch.isfinite(y).all()
    assert torch.allclose(y, torch.softmax(x, -1))


def test_bad_input():
    with pytest.raises(ValueError, match="unsupported dtype"):
        softmax(torch.zeros(2, 3, dtype=torch.float64, device=DEVICE))
    with pytest.raises(ValueError, match="non-empty"):
        softmax(torch.zeros(2, 0, device=DEVICE))
    with pytest.raises(TypeError, match="torch.Tensor"):
        softmax([1.0, 2.0])
