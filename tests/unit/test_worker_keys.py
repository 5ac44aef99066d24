"""A worker's API keys: one per account from its environment, never from the database."""

from __future__ import annotations

from bulkops.worker import AccountKeys, key_variable

ONE = "0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f"
TWO = "11111111-1111-4111-8111-111111111111"


def test_key_variable_is_the_account_id_in_capitals_with_underscores() -> None:
    assert key_variable(ONE) == "WIX_API_KEY_0A1B2C3D_0A1B_4C2D_8E3F_0A1B2C3D4E5F"


def test_each_account_takes_its_own_variable_whatever_the_case_of_the_id() -> None:
    keys = AccountKeys.from_environment({key_variable(ONE): "k1", key_variable(TWO): "k2",
                                         "WIX_API_KEY": "plain"})
    assert keys.key_for(ONE.upper()) == "k1"
    assert keys.key_for(TWO) == "k2"
    assert sorted(keys.secrets()) == ["k1", "k2", "plain"]


def test_the_plain_key_serves_the_account_wix_account_id_names_and_no_other() -> None:
    keys = AccountKeys.from_environment({"WIX_API_KEY": "plain", "WIX_ACCOUNT_ID": ONE})
    assert keys.key_for(ONE) == "plain"
    assert keys.key_for(TWO) == ""


def test_without_wix_account_id_the_plain_key_serves_every_account_without_its_own() -> None:
    keys = AccountKeys.from_environment({"WIX_API_KEY": "plain", key_variable(TWO): "k2"})
    assert keys.key_for(ONE) == "plain"
    assert keys.key_for(TWO) == "k2"
    assert AccountKeys.from_environment({}).key_for(ONE) == ""
    assert AccountKeys.from_environment({key_variable(ONE): ""}).key_for(ONE) == ""
