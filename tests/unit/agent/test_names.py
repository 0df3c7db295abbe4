"""Names and addresses the server derives for nodes and deployments."""

from __future__ import annotations

import pytest

from sparkplane.agent.control import agent_url, plain_name
from sparkplane.agent.credentials import new_join_token, new_node_key, node_id_of, token_id_of


@pytest.mark.parametrize(
    ("url", "peer", "expected"),
    [
        ("http://0.0.0.0:8401", "10.0.0.7", "http://10.0.0.7:8401"),
        ("https://0.0.0.0:8401/", "fd00::7", "https://[fd00::7]:8401"),
        ("http://10.0.0.9:8401", "10.0.0.7", "http://10.0.0.9:8401"),  # said where it is
        ("http://0.0.0.0:8401", None, "http://0.0.0.0:8401"),
    ],
)
def test_a_wildcard_agent_address_becomes_the_address_it_called_from(
    url: str, peer: str | None, expected: str
) -> None:
    assert agent_url(url, peer) == expected


def test_device_and_deployment_names_stay_plain() -> None:
    assert plain_name("spark-Qwen2.5 7B Instruct (Q4_K_M)") == "spark-Qwen2.5-7B-Instruct-Q4_K_M"
    assert plain_name("///") == "model"
    assert len(plain_name("x" * 200)) == 64


def test_tokens_and_node_keys_name_their_rows() -> None:
    token_id, token = new_join_token()
    assert token_id_of(token) == token_id
    assert token_id_of(token + "!") is None
    key = new_node_key("a" * 32)
    assert node_id_of(key) == "a" * 32
    assert node_id_of(token) is None
