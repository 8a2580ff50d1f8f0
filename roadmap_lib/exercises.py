"""Checks for the exercises at the end of each chapter.

A check either prints a short confirmation or raises :class:`ExerciseError` (an ``AssertionError``)
whose message says *what* is wrong and, where it can tell, *why*: the wrong shape, the wrong dtype,
values that differ and where, an answer that is off by a transpose or by a constant factor.
Running a chapter with its solutions is a test, so a wrong solution must fail loudly; a student
sees the same message as feedback.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch


class ExerciseError(AssertionError):
    """An exercise answer is not right yet; the message says what to look at."""


def _ok(message: str) -> None:
    print(f"Correct: {message}")


def _reachable_functions(fn: Any, closures: bool = True, limit: int = 50) -> list[Any]:
    """``fn`` and the functions it holds: behind ``functools.partial`` (``.func``), a decorator's
    ``__wrapped__`` or a bound method's ``__func__``, and (``closures=True``) in its closure cells."""
    found, todo, seen = [], [fn], set()
    while todo and len(found) < limit:
        f = todo.pop()
        if id(f) in seen or not callable(f):
            continue
        seen.add(id(f))
        found.append(f)
        todo += [g for g in (getattr(f, "func", None), getattr(f, "__wrapped__", None),
                             getattr(f, "__func__", None)) if g is not None]
        for cell in (getattr(f, "__closure__", None) or ()) if closures else ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    return found


@contextlib.contextmanager
def _forbidden(fn: Callable[..., Any], forbid: Iterable[Any], label: str) -> Iterator[None]:
    """While the block runs, every name bound to one of ``forbid`` (in the answer's globals and in
    the library's modules) refuses to be called: an exercise that asks to write a function must not
    pass by calling the library's own version of it."""
    saved: list[tuple[Any, str | None, Any]] = []  # (namespace or closure cell, name, value)
    answers = _reachable_functions(fn)  # a check may wrap the answer in a lambda: follow closures
    namespaces = [getattr(f, "__globals__", None) for f in answers] + [
        vars(m) for name, m in list(sys.modules.items()) if name.split(".")[0] == "roadmap_lib"]
    for target in forbid:
        what = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)

        def refuse(*args: Any, _what: str = what, **kwargs: Any) -> Any:
            raise ExerciseError(f"{label} calls the library's own `{_what}`: the exercise is to write "
                                f"it yourself, from the formula in the text.")

        for namespace in namespaces:
            if namespace is None:
                continue
            for key, value in list(namespace.items()):
                if value is target:
                    saved.append((namespace, key, value))
                    namespace[key] = refuse
        for cell in (c for f in answers for c in getattr(f, "__closure__", None) or ()):
            try:
                if cell.cell_contents is target:
                    saved.append((cell, None, target))
                    cell.cell_contents = refuse
            except ValueError:  # an empty cell
                continue
    try:
        yield
    finally:
        for namespace, key, value in reversed(saved):
            if key is None:
                namespace.cell_contents = value
            else:
                namespace[key] = value


def _refuse_the_reference_itself(fn: Callable[..., Any], forbid: Sequence[Any], label: str) -> None:
    """An answer that IS a forbidden library function (passed directly, wrapped in
    ``functools.partial`` or a decorator that sets ``__wrapped__``, or a copy sharing its code)
    refuses to be checked: ``_forbidden`` can only patch the names an answer calls through."""
    for f in _reachable_functions(fn, closures=False):
        for target in forbid:
            code = getattr(f, "__code__", None)
            if f is target or (code is not None and code is getattr(target, "__code__", None)):
                what = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
                raise ExerciseError(f"{label} is the library's own `{what}`: the exercise is to write it "
                                    f"yourself, from the formula in the text.")


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if value is None:
        raise ExerciseError(f"{name} is None: did the function forget to `return` its result?")
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ExerciseError(
            f"{name} should be a tensor (or numbers), got {type(value).__name__}"
        ) from err


def _scale_factor(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    """The constant c with got ≈ c·expected, when there is one (and it is not 1)."""
    mask = expected.abs() > 1e-6 * expected.abs().max().clamp_min(1e-30)
    if mask.sum() < 2:
        return None
    ratios = got[mask] / expected[mask]
    c = ratios.median().item()
    if not torch.isfinite(torch.tensor(c)) or abs(c) < 1e-12 or abs(c - 1) < 1e-3:
        return None
    if torch.allclose(got, c * expected, rtol=1e-3, atol=1e-6 * expected.abs().max().item()):
        return c
    return None


def _same(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.dtype == torch.bool or b.dtype == torch.bool:
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True))


def _shift_hint(g: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> str | None:
    """'shifted by one along dimension d' when got equals expected moved one step along an axis."""
    for dim in range(g.ndim):
        n = g.shape[dim]
        if n < 3:
            continue
        for step, word in ((1, "later"), (-1, "earlier")):
            a = g.narrow(dim, step if step > 0 else 0, n - 1)
            b = e.narrow(dim, 0 if step > 0 else 1, n - 1)
            shift_invariant = _same(e.narrow(dim, 1, n - 1), e.narrow(dim, 0, n - 1), rtol, atol)
            if _same(a, b, rtol, atol) and not shift_invariant:
                return (f"it equals the expected value shifted one position {word} along dimension {dim} "
                        f"(an off-by-one in an index, a position or a mask?).")
    return None


def _normalised_axis_hint(g: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> str | None:
    """'normalised over dimension a instead of b' for answers that should sum to 1 along one axis."""
    if g.ndim < 2 or (e < -atol).any():
        return None
    sums_e = [d for d in range(e.ndim) if torch.allclose(e.sum(d), torch.ones(()).double(), atol=1e-4)]
    sums_g = [d for d in range(g.ndim) if torch.allclose(g.sum(d), torch.ones(()).double(), atol=1e-4)]
    if sums_e and sums_g and not set(sums_e) & set(sums_g):
        return (f"it sums to 1 over dimension {sums_g[0]} where the expected value sums to 1 over "
                f"dimension {sums_e[0]}: a softmax or normalisation over the wrong axis?")
    if sums_e and not sums_g and (g >= -atol).all():
        return f"its entries do not sum to 1 over dimension {sums_e[0]} as they should: a missing normalisation?"
    return None


def _mask_hint(g: torch.Tensor, e: torch.Tensor, wrong: torch.Tensor) -> str | None:
    """Square boolean masks: the diagonal, or entries above it (the future)."""
    if g.dtype != torch.bool or e.dtype != torch.bool or g.ndim < 2 or g.shape[-1] != g.shape[-2]:
        return None
    n = g.shape[-1]
    diagonal = torch.eye(n, dtype=torch.bool).expand_as(g)
    if not (wrong & ~diagonal).any():
        return "it differs from the expected mask only on the diagonal: is a query's own position included?"
    future = torch.ones(n, n, dtype=torch.bool).triu(1).expand_as(g)
    if (g & future & ~e).any():
        i, j = (int(x) for x in (g & future & ~e).nonzero()[0][-2:])
        return f"query {i} may attend to key {j}, which comes after it: the mask lets a position see the future."
    return None


def check_tensor(
    got: Any,
    expected: Any,
    *,
    name: str = "your answer",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    check_dtype: bool = False,
    quiet: bool = False,
) -> None:
    """Check that ``got`` equals ``expected`` within ``atol + rtol·|expected|``, element by element.

    On a mismatch the message names the first thing that is wrong: the type, the shape (and whether
    the transpose would fit), the dtype when ``check_dtype``, NaNs, a constant factor, or the number
    of wrong entries with the worst one's index and both values.
    """
    g = _as_tensor(got, name)
    e = _as_tensor(expected, "the expected value")
    if g.shape != e.shape:
        hint = ""
        if g.ndim >= 2 and g.transpose(-1, -2).shape == e.shape:
            hint = " It has the shape of the transpose: check the order of the last two dimensions."
        elif g.numel() == e.numel():
            hint = " It has the right number of entries: a reshape or a missing sum/mean?"
        raise ExerciseError(
            f"{name} has shape {tuple(g.shape)}, expected {tuple(e.shape)}.{hint}"
        )
    if check_dtype and g.dtype != e.dtype:
        raise ExerciseError(f"{name} has dtype {g.dtype}, expected {e.dtype}.")
    if g.dtype == torch.bool or e.dtype == torch.bool or not (g.is_floating_point() or e.is_floating_point()):
        wrong = g.to(e.dtype) != e if g.dtype != e.dtype else g != e
        if wrong.any():
            idx = tuple(int(i) for i in wrong.nonzero()[0])
            hint = _mask_hint(g, e, wrong) or _shift_hint(g.to(e.dtype) if g.dtype != e.dtype else g, e, 0, 0)
            raise ExerciseError(
                (f"{name}: {hint} " if hint else f"{name}: ")
                + f"{int(wrong.sum())} of {g.numel()} entries differ; first at index {idx}: "
                f"got {g[idx].item()}, expected {e[idx].item()}."
            )
        if not quiet:
            _ok(f"{name} matches ({tuple(g.shape)}).")
        return
    g64, e64 = g.double(), e.double()
    if torch.isnan(g64).any() and not torch.isnan(e64).any():
        idx = tuple(int(i) for i in torch.isnan(g64).nonzero()[0])
        raise ExerciseError(f"{name} contains NaN (first at index {idx}): look for 0/0, log(0) or inf − inf "
                            "(a softmax over a row where every entry was masked to -inf gives NaN).")
    if torch.isinf(g64).any() and not torch.isinf(e64).any():
        idx = tuple(int(i) for i in torch.isinf(g64).nonzero()[0])
        raise ExerciseError(f"{name} contains inf (first at index {idx}): an overflow, or a -inf mask value "
                            "that was never passed through a softmax?")
    close = torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        if not quiet:
            _ok(f"{name} matches (shape {tuple(g.shape)}, max abs difference {(g64 - e64).abs().max().item():.2e}).")
        return
    if g64.ndim >= 2 and g64.shape[-1] == g64.shape[-2]:
        if torch.allclose(g64.transpose(-1, -2), e64, rtol=rtol, atol=atol):
            raise ExerciseError(f"{name} is the transpose of the expected value: swap the last two dimensions.")
    c = _scale_factor(g64, e64)
    if c is not None:
        raise ExerciseError(
            f"{name} is the expected value times {c:.4g}: a scale factor is missing or applied twice."
        )
    hint = _normalised_axis_hint(g64, e64, rtol, atol) or _shift_hint(g64, e64, rtol, atol)
    err = (g64 - e64).abs()
    err[close] = 0
    idx = tuple(int(i) for i in (err == err.max()).nonzero()[0])
    raise ExerciseError(
        (f"{name}: {hint} " if hint else f"{name}: ")
        + f"{int((~close).sum())} of {g.numel()} entries differ (tolerance atol={atol}, rtol={rtol}); "
        f"worst at index {idx}: got {g64[idx].item():.6g}, expected {e64[idx].item():.6g}."
    )


def check_close(got: Any, expected: float, *, name: str = "your answer", atol: float = 1e-6, rtol: float = 1e-4) -> None:
    """Check one number. The message gives both values and their difference."""
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise ExerciseError(f"{name} should be a single number, got a tensor of shape {tuple(got.shape)}.")
        got = got.item()
    if got is None:
        raise ExerciseError(f"{name} is None: did the function forget to `return` its result?")
    try:
        value = float(got)
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"{name} should be a number, got {type(got).__name__}.") from err
    if not abs(value - expected) <= atol + rtol * abs(expected):
        raise ExerciseError(f"{name} is {value:.6g}, expected {expected:.6g} (difference {value - expected:+.3g}).")
    _ok(f"{name} = {value:.6g}.")


def check_true(condition: bool, *, fail: str, success: str) -> None:
    """Check a property; ``fail`` explains what is wrong when it does not hold."""
    if not condition:
        raise ExerciseError(fail)
    _ok(success)


def check_function(
    fn: Callable[..., Any],
    cases: Iterable[tuple[Sequence[Any], Any]],
    *,
    name: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    mistakes: dict[str, Callable[..., Any]] | None = None,
    forbid: Iterable[Any] = (),
    outputs: Sequence[str] | None = None,
    check_dtype: bool = False,
) -> None:
    """Call ``fn(*args)`` for each ``(args, expected)`` case and compare with :func:`check_tensor`.

    The message names the failing case, so a learner can rerun exactly that call. ``mistakes`` maps
    a plain-words description of a common mistake ("the 1/√d scale is missing") to a function that
    makes it; when the answer is wrong and equals what one of them returns, the message starts with
    that description. An input that the function changed in place is reported too. ``forbid``
    lists the library functions (or classes) the answer must not call: the reference the cases
    were computed with, which the chapter itself imports.

    An ``expected`` that is a tuple means the function returns several tensors; each is compared
    in turn, named by ``outputs`` (e.g. ``("codes", "scales", "zeros")``). ``check_dtype`` also
    requires each output's dtype. When the answer raises an exception and a declared mistake raises
    the same kind of exception on that case, the message names the mistake too.
    """
    forbid = tuple(forbid)
    label = name or getattr(fn, "__name__", "your function")
    _refuse_the_reference_itself(fn, forbid, label)
    cases = list(cases)
    for i, (args, expected) in enumerate(cases):
        before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else repr(a) for a in args)
        call = f"{label}({shapes}) [case {i + 1}]"
        try:
            with _forbidden(fn, forbid, label):
                got = fn(*args)
        except NotImplementedError as err:
            raise ExerciseError(f"{label} is not written yet (it raised NotImplementedError).") from err
        except ExerciseError:
            raise
        except Exception as err:
            diagnosis = _which_mistake_raises(err, args, mistakes or {})
            if diagnosis:
                raise ExerciseError(f"{call}: likely mistake: {diagnosis}. Details: it raised "
                                    f"{type(err).__name__}: {err}") from err
            raise
        for k, (a, b) in enumerate(zip(args, before)):
            if b is not None and not torch.equal(a, b) and not (a.isnan() & b.isnan()).all():
                raise ExerciseError(f"{call} changed its argument {k + 1} in place (an in-place operation "
                                    f"such as `x += ...`, `x.mul_()` or `x[...] = ...` on an input): work on a "
                                    f"copy or use out-of-place operations.")
        try:
            if isinstance(expected, tuple):
                _check_outputs(got, expected, call, outputs, atol, rtol, check_dtype)
            else:
                if check_dtype and isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor) \
                        and got.dtype != expected.dtype:
                    raise ExerciseError(f"{call} has dtype {got.dtype}, expected {expected.dtype}.")
                check_tensor(got, expected, name=call, atol=atol, rtol=rtol, quiet=True)
        except ExerciseError as err:
            diagnosis = _which_mistake(got, args, mistakes or {}, atol, rtol)
            if diagnosis:
                raise ExerciseError(f"{call}: likely mistake: {diagnosis}. Details: {err}") from None
            raise
    _ok(f"{label} passes all {len(cases)} cases.")


def _check_outputs(got: Any, expected: tuple[Any, ...], call: str, outputs: Sequence[str] | None,
                   atol: float, rtol: float, check_dtype: bool) -> None:
    """Several outputs: the count first, then each one (its dtype when asked, then its values)."""
    names = list(outputs or ()) + [f"output {k + 1}" for k in range(len(outputs or ()), len(expected))]
    if not isinstance(got, (tuple, list)) or len(got) != len(expected):
        what = f"a {type(got).__name__}" if not isinstance(got, (tuple, list)) else f"{len(got)} values"
        raise ExerciseError(f"{call} should return {len(expected)} values ({', '.join(names)}), got {what}.")
    for g, e, out_name in zip(got, expected, names):
        if check_dtype and isinstance(e, torch.Tensor):
            dtype = g.dtype if isinstance(g, torch.Tensor) else type(g).__name__
            if dtype != e.dtype:
                raise ExerciseError(f"{call}: {out_name} has dtype {dtype}, expected {e.dtype}.")
        check_tensor(g, e, name=f"{call}: {out_name}", atol=atol, rtol=rtol, quiet=True)


def _which_mistake_raises(err: Exception, args: Sequence[Any], mistakes: dict[str, Callable[..., Any]]) -> str | None:
    """The first declared mistake that raises the same kind of exception on these arguments."""
    for description, wrong in mistakes.items():
        copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        try:
            wrong(*copies)
        except Exception as other:  # noqa: BLE001 - any exception of the same kind matches
            if type(other) is type(err):
                return description
    return None


def _which_mistake(got: Any, args: Sequence[Any], mistakes: dict[str, Callable[..., Any]],
                   atol: float, rtol: float) -> str | None:
    if isinstance(got, (tuple, list)):
        return _which_mistake_of_many(got, args, mistakes, atol, rtol)
    if isinstance(got, (int, float, bool)):
        got = torch.as_tensor(got)
    if not isinstance(got, torch.Tensor):
        return None
    for description, wrong in mistakes.items():
        copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        try:
            out = wrong(*copies)
            out = torch.as_tensor(out)
        except Exception:  # a mistake that cannot even run on this case is not the one made
            continue
        if out.shape == got.shape and _same(got.detach(), out, rtol, atol):
            return description
    return None


def _which_mistake_of_many(got: Sequence[Any], args: Sequence[Any], mistakes: dict[str, Callable[..., Any]],
                           atol: float, rtol: float) -> str | None:
    """As :func:`_which_mistake`, for answers that return several tensors: every one must agree."""
    for description, wrong in mistakes.items():
        copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        try:
            outs = wrong(*copies)
            if not isinstance(outs, (tuple, list)) or len(outs) != len(got):
                continue
            pairs = [(torch.as_tensor(g).detach(), torch.as_tensor(o)) for g, o in zip(got, outs)]
        except Exception:  # a mistake that cannot even run on this case is not the one made
            continue
        if all(g.shape == o.shape and _same(g, o, rtol, atol) for g, o in pairs):
            return description
    return None


__all__ = ["ExerciseError", "check_close", "check_function", "check_tensor", "check_true"]


def check_equal(fn: Callable[..., Any], cases: Iterable[tuple[Sequence[Any], Any]], *,
                name: str | None = None, forbid: Iterable[Any] = (),
                mistakes: dict[str, Callable[..., Any]] | None = None) -> None:
    """Call ``fn(*args)`` for each ``(args, expected)`` case and require ``got == expected``
    exactly: for answers that are not tensors (lists of tokens, dicts of counts, strings).
    ``forbid`` and ``mistakes`` as in :func:`check_function`: a wrong answer equal to what a
    declared mistake returns on that case is named ("likely mistake: ...")."""
    import reprlib

    forbid = tuple(forbid)
    label = name or getattr(fn, "__name__", "your function")
    _refuse_the_reference_itself(fn, forbid, label)
    cases = list(cases)
    for i, (args, expected) in enumerate(cases):
        call = f"{label}({', '.join(map(reprlib.repr, args))})"
        pristine = copy.deepcopy(args) if mistakes else args  # in case the answer changes its input
        try:
            with _forbidden(fn, forbid, label):
                got = fn(*args)
        except NotImplementedError as err:
            raise ExerciseError(f"{label} is not written yet (it raised NotImplementedError).") from err
        if got is None and expected is not None:
            raise ExerciseError(f"{call} returned None: did the function forget to `return`?")
        wrong_type = type(got) is not type(expected) and not (isinstance(got, dict) and isinstance(expected, dict))
        if wrong_type or got != expected:
            likely = ""
            for description, wrong_fn in (mistakes or {}).items():
                try:
                    if wrong_fn(*copy.deepcopy(pristine)) == got:
                        likely = f"likely mistake: {description}. "
                        break
                except Exception:  # a mistake that cannot run on this case is not the one made
                    continue
            if wrong_type:
                raise ExerciseError(f"{likely}{call} [case {i + 1}] returned a {type(got).__name__}, "
                                    f"expected a {type(expected).__name__}: {expected!r}")
            raise ExerciseError(f"{likely}{call} [case {i + 1}] returned {got!r}, expected {expected!r}")
    _ok(f"{label} passes all {len(cases)} cases.")


__all__.append("check_equal")
