"""Env values of a resource config: `${NAME}` references, secret-looking literals, `.env` files."""

from __future__ import annotations

import pytest

from flashc.envvars import looks_secret, read_dotenv, references, substitute

# --- references ---------------------------------------------------------------------------------


def test_references_are_named_in_order_each_once() -> None:
    assert references("${B}:${A}/${B}") == ("B", "A")


def test_references_skip_the_escape_and_plain_text() -> None:
    assert references("$${HOME} costs $5 and {NOT} ${} $NAME") == ()


def test_references_of_a_plain_value_are_none() -> None:
    assert references("gpt2") == ()


# --- substitute ---------------------------------------------------------------------------------


def test_substitute_fills_a_whole_value_reference() -> None:
    assert substitute("${HF_TOKEN}", {"HF_TOKEN": "hf_secret"}) == ("hf_secret", ())


def test_substitute_fills_several_references_in_one_value() -> None:
    value, missing = substitute("postgres://${USER}:${PASS}@${HOST}/db", {"USER": "u", "PASS": "p", "HOST": "h"})
    assert (value, missing) == ("postgres://u:p@h/db", ())


def test_substitute_leaves_a_value_without_references_as_it_is() -> None:
    assert substitute("gpt2", {"gpt2": "other"}) == ("gpt2", ())


def test_substitute_turns_the_escape_into_a_literal_reference() -> None:
    assert substitute("$${HOME}/x", {"HOME": "/root"}) == ("${HOME}/x", ())


def test_substitute_reports_missing_names_once_in_order_and_keeps_their_text() -> None:
    value, missing = substitute("${B}-${A}-${B}-${C}", {"C": "c"})
    assert value == "${B}-${A}-${B}-c"
    assert missing == ("B", "A")


def test_substitute_does_not_expand_a_reference_inside_a_filled_value() -> None:
    assert substitute("${A}", {"A": "${B}", "B": "no"}) == ("${B}", ())


def test_substitute_accepts_an_empty_value_as_set() -> None:
    assert substitute("x${EMPTY}y", {"EMPTY": ""}) == ("xy", ())


# --- looks_secret -------------------------------------------------------------------------------

SHAPES = {
    "hugging face": "hf_" + "a1B2c3D4e5" * 4,
    "openai": "sk-proj-" + "abcDEF123_" * 3,
    "github classic": "ghp_" + "A1b2C3d4E5" * 4,
    "github fine-grained": "github_pat_11ABCDEFG0_" + "abcdefghij" * 3,
    "aws access key": "AKIAIOSFODNN7EXAMPLE",
    "slack bot": "xoxb-1234567890-abcdefghij",
    "runpod": "rpa_" + "ABCDEFGHIJ1234567890" * 2,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize("value", SHAPES.values(), ids=SHAPES.keys())
def test_a_known_credential_shape_is_a_secret_whatever_its_name(value: str) -> None:
    assert looks_secret("MODEL_ID", value)


@pytest.mark.parametrize("value", ["hf_abc", "sk-short", "AKIA1234", "xoxb-1"])
def test_a_too_short_prefix_is_not_a_credential_shape(value: str) -> None:
    assert not looks_secret("MODEL_ID", value)


@pytest.mark.parametrize("name", ["HF_TOKEN", "DB_PASSWORD", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "hf_token"])
def test_a_secret_name_with_a_long_value_is_a_secret(name: str) -> None:
    assert looks_secret(name, "s3cr3t-v4lue-123")


@pytest.mark.parametrize("value", ["xxx", "todo", "<token>", ""])
def test_a_secret_name_with_a_short_placeholder_is_not(value: str) -> None:
    assert not looks_secret("HF_TOKEN", value)


def test_a_secret_name_with_a_sentence_is_not() -> None:
    assert not looks_secret("DB_PASSWORD", "set me in production please")


@pytest.mark.parametrize("value", ["${HF_TOKEN}", "${PREFIX}-abcdefghijklmnop", "hf_" + "a" * 40 + "${X}"])
def test_a_reference_is_not_a_secret(value: str) -> None:
    assert not looks_secret("HF_TOKEN", value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("MODEL_ID", "gpt2"), ("MODEL_ID", "meta-llama/Llama-3.1-8B-Instruct"), ("HF_HOME", "/runpod-volume/hf-cache")],
)
def test_an_ordinary_name_and_value_is_not_a_secret(name: str, value: str) -> None:
    assert not looks_secret(name, value)


@pytest.mark.parametrize(("name", "value"), [("TOKENIZER_NAME", "bert-base-uncased"), ("AUTHOR", "janedoe42")])
def test_a_name_that_only_contains_a_secret_word_is_not_a_secret(name: str, value: str) -> None:
    assert not looks_secret(name, value)


@pytest.mark.parametrize("value", ["your_token", "changeme", "<your token>", "xxxxxxxxxx", "placeholder-value"])
def test_a_placeholder_is_not_a_secret(value: str) -> None:
    assert not looks_secret("HF_TOKEN", value)


# --- read_dotenv --------------------------------------------------------------------------------


def test_dotenv_reads_plain_assignments_and_export() -> None:
    text = "A=1\nexport B=two\n  C = three  \n"
    assert read_dotenv(text) == {"A": "1", "B": "two", "C": "three"}


def test_dotenv_single_quotes_keep_the_text_as_it_is() -> None:
    assert read_dotenv(r"A='x\ny # not a comment'") == {"A": r"x\ny # not a comment"}


def test_dotenv_double_quotes_understand_escapes() -> None:
    assert read_dotenv(r'A="line1\nline2\ttab \"q\" back\\slash"') == {"A": 'line1\nline2\ttab "q" back\\slash'}


def test_dotenv_unknown_escape_in_double_quotes_is_kept() -> None:
    assert read_dotenv(r'A="C:\path"') == {"A": r"C:\path"}


def test_dotenv_unquoted_value_keeps_backslashes() -> None:
    assert read_dotenv(r"A=x\ny") == {"A": r"x\ny"}


def test_dotenv_inline_comment_outside_quotes_is_dropped() -> None:
    text = "A=value # the comment\nB=\"quoted # kept\" # dropped\nC='single # kept'   # dropped\n"
    assert read_dotenv(text) == {"A": "value", "B": "quoted # kept", "C": "single # kept"}


def test_dotenv_hash_inside_an_unquoted_word_is_kept() -> None:
    assert read_dotenv("URL=http://host/page#anchor") == {"URL": "http://host/page#anchor"}


def test_dotenv_skips_blank_comment_and_garbage_lines() -> None:
    text = "\n   \n# A=commented\n  # B=also\nnot an assignment\n=novalue\n1BAD=x\nexport\nGOOD=yes\n"
    assert read_dotenv(text) == {"GOOD": "yes"}


def test_dotenv_empty_value_is_set_to_empty() -> None:
    assert read_dotenv('A=\nB=""\n') == {"A": "", "B": ""}


def test_dotenv_later_assignment_wins() -> None:
    assert read_dotenv("A=first\nB=b\nA=second\n") == {"A": "second", "B": "b"}


def test_dotenv_value_keeps_equals_signs() -> None:
    assert read_dotenv("DSN=a=b;c=d") == {"DSN": "a=b;c=d"}
