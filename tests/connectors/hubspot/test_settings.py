"""HubSpot's own settings (BATON_HUBSPOT_*): read apart from the core's, checked at start."""

from pathlib import Path

import pytest

from baton.wiring import build_hubspot
from connectors.hubspot.settings import HubSpotSettings, load_hubspot_settings
from core.errors import ConfigError
from core.settings import load_settings
from core.store import Store


def test_retention_outlives_hubspots_retries_and_its_block_expiry(store: Store,
                                                                 tmp_path: Path) -> None:
    assert HubSpotSettings(block_expiration="P1D").retention_floor_days() == 7
    assert HubSpotSettings(block_expiration="P30D").retention_floor_days() == 31
    settings = load_settings(data_dir=tmp_path, retention_days=10)
    with pytest.raises(ConfigError, match="BATON_RETENTION_DAYS: at least 11 days"):
        build_hubspot(settings, store, lambda: None,  # type: ignore[arg-type,return-value]
                      HubSpotSettings(block_expiration="P10D"))
    assert build_hubspot(settings, store, lambda: None,  # type: ignore[arg-type,return-value]
                         HubSpotSettings(block_expiration="P9D")).settings.block_expiration == "P9D"


def test_hubspot_settings_are_read_from_their_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_HUBSPOT_SYNC_BUDGET", "2.5")
    monkeypatch.setenv("BATON_HUBSPOT_PORTAL_ID", "62")
    own = load_hubspot_settings()
    assert (own.sync_budget, own.portal_id) == (2.5, 62)
    assert not hasattr(load_settings(), "hubspot_sync_budget")  # the core's settings hold none
    with pytest.raises(ConfigError, match="BATON_HUBSPOT_BLOCK_EXPIRATION"):
        load_hubspot_settings(block_expiration="one day")
    monkeypatch.setenv("BATON_HUBSPOT_REQUESTS_PER_10S", "lots")
    with pytest.raises(ConfigError, match="BATON_HUBSPOT_REQUESTS_PER_10S"):
        load_hubspot_settings()
