"""The media section of the config: defaults, the freeze date and one clear line per wrong value."""

from __future__ import annotations

import pytest

from ranvier.config import Config, ConfigError


def test_media_defaults():
    media = Config().media
    assert media.max_upload_bytes == 50 * 1024 * 1024
    assert media.user_quota_bytes == 0
    assert media.url_preview.enabled is False
    assert media.freeze_ts == 1725148800000  # 2024-09-01T00:00:00Z


@pytest.mark.parametrize("date, expected", [
    ("2030-01-02", 1893542400000),
    ("2030-01-02T01:00:00+01:00", 1893542400000),
    ("", None),
])
def test_freeze_date_forms(date, expected):
    assert Config.from_dict({"media": {"unauthenticated_freeze_date": date}}).media.freeze_ts == expected


@pytest.mark.parametrize("media, message", [
    ({"max_upload_bytes": 0}, "media.max_upload_bytes"),
    ({"user_quota_bytes": -1}, "media.user_quota_bytes"),
    ({"max_pending_uploads": -5}, "media.max_pending_uploads"),
    ({"max_image_pixels": 0}, "media.max_image_pixels"),
    ({"unauthenticated_freeze_date": "next tuesday"}, "media.unauthenticated_freeze_date"),
    ({"unauthenticated_freeze_date": 20240901}, "media.unauthenticated_freeze_date: must be a string"),
    ({"url_preview": {"enabled": "yes"}}, "media.url_preview.enabled: must be true or false"),
    ({"url_preview": {"max_fetch_bytes": 10}}, "media.url_preview.max_fetch_bytes"),
    ({"url_preview": {"allowed_networks": ["10.0.0.0/8", "nonsense"]}}, "media.url_preview.allowed_networks[1]"),
    ({"thumbnail_sizes": []}, "media.thumbnail_sizes: unknown option"),
])
def test_wrong_media_values_name_the_option(media, message):
    with pytest.raises(ConfigError) as raised:
        Config.from_dict({"media": media})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
