"""Request validation: defaults, ranges, strict types, unknown fields; the response shapes."""

import pytest
from pydantic import ValidationError

from roadmap_lib.serve.schemas import CompletionRequest, completion_body, error_body


def test_defaults_and_accepted_values():
    r = CompletionRequest.model_validate({"prompt": "hi"})
    assert (r.max_tokens, r.temperature, r.top_p, r.seed, r.stream) == (16, 0.0, 1.0, None, False)
    r = CompletionRequest.model_validate({"prompt": "hi", "temperature": 1, "top_p": 0.5,
                                          "seed": 7, "stream": True})
    assert r.temperature == 1.0 and r.seed == 7 and r.stream


@pytest.mark.parametrize("body, field", [
    ({}, "prompt"),
    ({"prompt": 3}, "prompt"),
    ({"prompt": "x", "max_tokens": True}, "max_tokens"),  # strict: a bool is not an int
    ({"prompt": "x", "max_tokens": 2.0}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 5000}, "max_tokens"),
    ({"prompt": "x", "temperature": "0.5"}, "temperature"),  # strict: no string coercion
    ({"prompt": "x", "top_p": 1.5}, "top_p"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "n": 2}, "n"),
])
def test_bad_bodies_name_the_field(body, field):
    with pytest.raises(ValidationError) as err:
        CompletionRequest.model_validate(body)
    assert err.value.errors()[0]["loc"] == (field,)


def test_response_shapes():
    done = completion_body(request_id="cmpl-1", created=0, model="m", text="ab", prompt_tokens=3,
                           completion_tokens=2, finish_reason="length")
    assert done["choices"] == [{"index": 0, "text": "ab", "finish_reason": "length"}]
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    chunk = completion_body(request_id="cmpl-1", created=0, model="m", text="a", prompt_tokens=3,
                            completion_tokens=1, finish_reason=None)
    assert "usage" not in chunk and chunk["object"] == "text_completion"
    assert error_body("top_p: too big", "top_p")["error"]["param"] == "top_p"
