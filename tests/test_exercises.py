"""The exercise checks give specific feedback: shape, transpose, scale, where the values differ."""

import pytest
import torch

from roadmap_lib.exercises import (
    ExerciseError,
    check_close,
    check_equal,
    check_function,
    check_tensor,
    check_true,
)


def test_a_right_answer_passes(capsys):
    x = torch.randn(3, 4, dtype=torch.float64)
    check_tensor(x.clone(), x)
    assert "Correct" in capsys.readouterr().out


def test_wrong_shape_names_both_shapes():
    with pytest.raises(ExerciseError, match=r"shape \(3, 5\), expected \(3, 4\)"):
        check_tensor(torch.zeros(3, 5), torch.zeros(3, 4))


def test_transposed_shape_is_recognised():
    with pytest.raises(ExerciseError, match="transpose"):
        check_tensor(torch.zeros(4, 3), torch.zeros(3, 4))


def test_transposed_square_values_are_recognised():
    x = torch.randn(2, 5, 5)
    with pytest.raises(ExerciseError, match="transpose"):
        check_tensor(x.transpose(-1, -2), x)


def test_missing_scale_factor_is_recognised():
    x = torch.randn(4, 8).abs() + 0.1
    with pytest.raises(ExerciseError, match=r"times 0\.125"):
        check_tensor(x / 8, x)


def test_wrong_values_name_the_worst_index():
    x = torch.zeros(2, 3)
    y = x.clone()
    y[1, 2] = 5.0
    with pytest.raises(ExerciseError, match=r"1 of 6 entries differ.*index \(1, 2\).*got 5"):
        check_tensor(y, x)


def test_nan_is_reported():
    y = torch.zeros(3)
    y[1] = float("nan")
    with pytest.raises(ExerciseError, match="NaN"):
        check_tensor(y, torch.zeros(3))


def test_none_means_a_missing_return():
    with pytest.raises(ExerciseError, match="return"):
        check_tensor(None, torch.zeros(3))


def test_integer_answers_compare_exactly():
    with pytest.raises(ExerciseError, match="index \\(2,\\)"):
        check_tensor(torch.tensor([1, 2, 4]), torch.tensor([1, 2, 3]))


def test_check_close_and_check_true():
    check_close(0.5000001, 0.5)
    with pytest.raises(ExerciseError, match="expected 0.5"):
        check_close(0.6, 0.5)
    with pytest.raises(ExerciseError, match="single number"):
        check_close(torch.zeros(2), 0.0)
    check_true(True, fail="no", success="yes")
    with pytest.raises(ExerciseError, match="explained"):
        check_true(False, fail="explained", success="yes")


def test_check_function_names_the_failing_case():
    def double(x):
        return x * 2 if x.numel() < 3 else x

    cases = [((torch.ones(2),), torch.full((2,), 2.0)), ((torch.ones(3),), torch.full((3,), 2.0))]
    with pytest.raises(ExerciseError, match=r"case 2"):
        check_function(double, cases)


def test_check_function_reports_an_unwritten_stub():
    def stub(x):
        raise NotImplementedError("write your solution here")

    with pytest.raises(ExerciseError, match="not written yet"):
        check_function(stub, [((torch.ones(1),), torch.ones(1))])


# ---- the diagnoses (issue: feedback that says *what* is wrong) ---------------------------------


def _message(fn, cases, **kw):
    from roadmap_lib.exercises import ExerciseError, check_function

    with pytest.raises(ExerciseError) as info:
        check_function(fn, cases, **kw)
    return str(info.value)


def test_softmax_over_the_wrong_axis_is_named():
    x = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(0))
    msg = _message(lambda t: t.softmax(1), [((x,), x.softmax(-1))])
    assert "sums to 1 over dimension 1 where the expected value sums to 1 over dimension 2" in msg
    msg = _message(lambda t: t.exp(), [((x,), x.softmax(-1))])
    assert "do not sum to 1 over dimension 2" in msg


def test_an_off_by_one_shift_is_named():
    pos = torch.arange(10.0)
    msg = _message(lambda t: t + 1, [((pos,), pos)])
    assert "shifted one position earlier along dimension 0" in msg  # got[i] == expected[i + 1]
    table = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    msg = _message(lambda t: torch.cat([t[1:], t[:1]]), [((table,), table)])
    assert "shifted one position earlier along dimension 0" in msg


def test_in_place_changes_to_an_input_are_named():
    x = torch.randn(4)
    msg = _message(lambda t: t.mul_(2), [((x.clone(),), 2 * x)])
    assert "changed its argument 1 in place" in msg


def test_inf_and_nan_are_named():
    x = torch.ones(3)
    assert "contains inf" in _message(lambda t: t / 0, [((x,), x)])
    assert "contains NaN" in _message(lambda t: t * float("nan"), [((x,), x)])


def test_masks_that_see_the_future_or_miss_the_diagonal_are_named():
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    assert "see the future" in _message(lambda n: torch.ones(n, n, dtype=torch.bool), [((5,), causal)])
    assert "only on the diagonal" in _message(lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), [((5,), causal)])


def test_declared_mistakes_come_first_and_a_failing_mistake_is_skipped():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    mistakes = {"this one cannot run": lambda t: t @ t, "the square root is missing": lambda t: t ** 2}
    msg = _message(lambda t: t * t, [((x.abs(),), x.abs() ** 0.5)], mistakes=mistakes)
    assert msg.startswith("<lambda>((3, 4)) [case 1]: likely mistake: the square root is missing. Details:")
    # a wrong answer that matches no declared mistake gets the general message only
    assert "likely mistake" not in _message(lambda t: t + 5, [((x.abs(),), x.abs() ** 0.5)], mistakes=mistakes)


def test_forbid_refuses_the_library_reference_and_restores_it():
    import roadmap_lib.positional as positional
    from roadmap_lib.positional import sinusoidal_encoding

    namespace = {"sinusoidal_encoding": sinusoidal_encoding, "positional": positional}
    exec("def lazy(n, d):\n    return sinusoidal_encoding(n, d)\n"
         "def lazy_module(n, d):\n    return positional.sinusoidal_encoding(n, d)\n"
         "def lazy_import(n, d):\n    from roadmap_lib.positional import sinusoidal_encoding as s\n    return s(n, d)\n",
         namespace)
    cases = [((6, 4), sinusoidal_encoding(6, 4))]
    for name in ("lazy", "lazy_module", "lazy_import"):
        with pytest.raises(ExerciseError, match="library's own `sinusoidal_encoding`"):
            check_function(namespace[name], cases, forbid=[sinusoidal_encoding])
    # restored afterwards, in the answer's namespace and in the library
    assert namespace["sinusoidal_encoding"] is sinusoidal_encoding
    assert positional.sinusoidal_encoding is sinusoidal_encoding
    check_function(namespace["lazy"], cases)  # without forbid, delegating passes

    def own(n, d):  # written by hand: passes with the reference forbidden
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        omega = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
        out = torch.zeros(n, d)
        out[:, 0::2], out[:, 1::2] = torch.sin(pos * omega), torch.cos(pos * omega)
        return out

    check_function(own, cases, forbid=[sinusoidal_encoding])


def test_forbid_refuses_the_reference_passed_as_the_answer():
    import functools
    import types

    from roadmap_lib.metrics import ngrams
    from roadmap_lib.positional import sinusoidal_encoding

    cases = [((6, 4), sinusoidal_encoding(6, 4))]
    copied = types.FunctionType(sinusoidal_encoding.__code__, sinusoidal_encoding.__globals__, "mine",
                                sinusoidal_encoding.__defaults__)

    @functools.wraps(sinusoidal_encoding)
    def decorated(*args):
        return sinusoidal_encoding(*args)

    for answer in (sinusoidal_encoding, functools.partial(sinusoidal_encoding), copied, decorated):
        with pytest.raises(ExerciseError, match="is the library's own `sinusoidal_encoding`"):
            check_function(answer, cases, forbid=[sinusoidal_encoding])
    check_function(sinusoidal_encoding, cases)  # without forbid it is simply right
    with pytest.raises(ExerciseError, match="is the library's own `ngrams`"):
        check_equal(ngrams, [((["a"], 1), {("a",): 1})], forbid=[ngrams])


def test_forbid_in_check_equal():
    from roadmap_lib.metrics import ngrams

    def uses_ngrams(tokens):
        return dict(ngrams(tokens, 1))

    with pytest.raises(ExerciseError, match="write it yourself"):
        check_equal(uses_ngrams, [((["a", "b"],), {("a",): 1, ("b",): 1})], forbid=[ngrams])
    check_equal(uses_ngrams, [((["a", "b"],), {("a",): 1, ("b",): 1})])


def test_several_outputs_are_compared_one_by_one_and_named():
    x = torch.arange(6.0).reshape(2, 3)
    cases = [((x,), (x.sum(0), x.amax(1)))]
    check_function(lambda t: (t.sum(0), t.amax(1)), cases, outputs=("sums", "maxima"))
    with pytest.raises(ExerciseError, match="maxima: .*differ"):
        check_function(lambda t: (t.sum(0), t.amin(1)), cases, outputs=("sums", "maxima"))
    with pytest.raises(ExerciseError, match=r"should return 2 values \(sums, maxima\), got a Tensor"):
        check_function(lambda t: t.sum(0), cases, outputs=("sums", "maxima"))
    msg = _message(lambda t: (t.sum(0), t.amin(1)), cases, outputs=("sums", "maxima"),
                   mistakes={"the minimum, not the maximum": lambda t: (t.sum(0), t.amin(1))})
    assert "likely mistake: the minimum, not the maximum" in msg


def test_check_dtype_in_check_function():
    x = torch.tensor([1.0, 2.0])
    with pytest.raises(ExerciseError, match="dtype torch.float32, expected torch.uint8"):
        check_function(lambda t: t.clone(), [((x,), x.to(torch.uint8))], check_dtype=True)
    with pytest.raises(ExerciseError, match="codes has dtype torch.float32, expected torch.uint8"):
        check_function(lambda t: (t.clone(),), [((x,), (x.to(torch.uint8),))], outputs=("codes",), check_dtype=True)
    check_function(lambda t: t.clone(), [((x,), x.to(torch.uint8))])  # values only, as before


def test_an_exception_is_named_when_a_declared_mistake_raises_it_too():
    mistakes = {"the empty case is not handled first": lambda n: 1 / n}
    with pytest.raises(ExerciseError, match="likely mistake: the empty case is not handled first.*ZeroDivisionError"):
        check_function(lambda n: 1 / n, [((0,), torch.tensor(0.0))], mistakes=mistakes)
    with pytest.raises(KeyError):  # an exception no mistake explains is left as it is
        check_function(lambda n: {}[n], [((0,), torch.tensor(0.0))], mistakes=mistakes)


def test_check_equal_names_a_declared_mistake_on_the_original_input():
    def pops(words):  # changes its input, then answers wrongly
        words.pop()
        return list(words)

    mistakes = {"the last word is dropped": lambda words: words[:-1], "never": lambda words: []}
    with pytest.raises(ExerciseError, match=r"^likely mistake: the last word is dropped\. "):
        check_equal(pops, [((["a", "b", "c"],), ["a", "b", "c"])], mistakes=mistakes)
    with pytest.raises(ExerciseError, match="^likely mistake: the last word is dropped. .*returned a tuple"):
        check_equal(lambda w: tuple(w[:-1]), [((["a", "b"],), ["a", "b"])],
                    mistakes={"the last word is dropped": lambda w: tuple(w[:-1])})
    with pytest.raises(ExerciseError, match=r"^<lambda>"):
        check_equal(lambda w: ["z"], [((["a"],), ["a"])], mistakes=mistakes)
