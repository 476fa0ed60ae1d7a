"""Settings, production refusals, the generated development key, secrets at rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from weaver.bootstrap import ConfigurationError, build_host, encryption_key
from weaver.secrets import SecretBox, SecretsError
from weaver.settings import DEFAULT_JWT_SECRET, Settings

STRONG = "x" * 40


def production(tmp_path: Path, **overrides: str) -> Settings:
    values = {
        "APP_ENV": "production",
        "WEAVER_DATA_DIR": str(tmp_path),
        "JWT_SECRET_KEY": STRONG,
        "ENCRYPTION_KEY": STRONG,
    }
    values.update(overrides)
    return Settings.from_env_names(values)


def test_defaults_match_the_deployment_document(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APP_ENV", "JWT_SECRET_KEY", "MINDSDB_URL", "REDIS_URL", "NEO4J_URI"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.app_env == "development"
    assert settings.log_level == "INFO"
    assert settings.jwt_secret_key == DEFAULT_JWT_SECRET
    assert settings.jwt_algorithm == "HS256"
    assert settings.mindsdb_url == "http://localhost:47334"
    assert settings.query_timeout_seconds == 15
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.idempotency_ttl_seconds == 600
    assert settings.neo4j_uri == "bolt://localhost:7687"
    assert settings.neo4j_user == "neo4j"
    assert settings.cors_allowed_origins == ["https://app.axiom.kr", "https://canvas.axiom.kr"]
    # The document's list leaves out PATCH, which the API itself uses (PATCH
    # /api/datasources/{name}); the HTTP contract asks for every method the API uses.
    assert settings.cors_allowed_methods == ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.query_max_rows == 100_000
    assert str(settings.rate_limit) == "600/60s"


def test_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVER_EXTERNAL_MODE", "true")
    monkeypatch.setenv("WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS", "42")
    monkeypatch.setenv("WEAVER_CORS_ALLOWED_ORIGINS", "http://a, *, http://b")
    monkeypatch.setenv("MINDSDB_TIMEOUT", "7.5")
    settings = Settings()
    assert settings.external_mode is True
    assert settings.idempotency_ttl_seconds == 42
    assert settings.cors_allowed_origins == ["http://a", "http://b"]
    assert settings.query_timeout_seconds == 7.5


def test_bad_rate_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="600/60s"):
        Settings.from_env_names({"WEAVER_RATE_LIMIT": "lots"})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"JWT_SECRET_KEY": DEFAULT_JWT_SECRET}, "development default"),
        ({"JWT_SECRET_KEY": "short"}, "shorter than 32"),
        ({"ENCRYPTION_KEY": ""}, "ENCRYPTION_KEY is not set"),
        ({"ENCRYPTION_KEY": "dev_encryption_key_32chars"}, "ENCRYPTION_KEY is shorter"),
        (
            {"WEAVER_METADATA_EXTERNAL_MODE": "true", "NEO4J_PASSWORD": "weaver_dev_password"},
            "NEO4J_PASSWORD",
        ),
    ],
)
def test_production_refuses_weak_settings(
    tmp_path: Path, overrides: dict[str, str], reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        build_host(production(tmp_path, **overrides), environ={})


def test_production_accepts_strong_settings(tmp_path: Path) -> None:
    host = build_host(production(tmp_path), environ={})
    assert host.context.settings.is_production


def test_development_key_is_generated_once_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env_names({"WEAVER_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": ""})
    first = encryption_key(settings)
    assert "ENCRYPTION_KEY is not set" in caplog.text
    assert encryption_key(settings) == first
    assert (tmp_path / "encryption.key").stat().st_mode & 0o077 == 0
    sealed = SecretBox(first).seal({"password": "pw"}, bound_to="t/ds")
    assert SecretBox(encryption_key(settings)).open(sealed, bound_to="t/ds") == {"password": "pw"}


class TestSecretBox:
    def test_round_trip_and_ciphertext_hides_the_value(self) -> None:
        box = SecretBox("current-key")
        sealed = box.seal({"password": "hunter2"}, bound_to="tenant/ds")
        assert "hunter2" not in sealed
        assert sealed.startswith("v1.")
        assert box.open(sealed, bound_to="tenant/ds") == {"password": "hunter2"}

    def test_bound_to_another_record_does_not_open(self) -> None:
        box = SecretBox("current-key")
        sealed = box.seal({"password": "x"}, bound_to="tenant-a/ds")
        with pytest.raises(SecretsError):
            box.open(sealed, bound_to="tenant-b/ds")

    def test_tampering_is_detected(self) -> None:
        box = SecretBox("current-key")
        sealed = box.seal({"password": "x"}, bound_to="t/ds")
        tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
        with pytest.raises(SecretsError):
            box.open(tampered, bound_to="t/ds")

    def test_rotation_opens_old_values_and_seals_new_ones_under_the_new_key(self) -> None:
        old = SecretBox("old-key").seal({"password": "x"}, bound_to="t/ds")
        rotated = SecretBox("new-key", previous=["old-key"])
        assert rotated.open(old, bound_to="t/ds") == {"password": "x"}
        # New values are sealed under the new key alone.
        fresh = rotated.seal({"a": 1}, bound_to="t/ds")
        assert SecretBox("new-key").open(fresh, bound_to="t/ds") == {"a": 1}
        with pytest.raises(SecretsError, match="not configured"):
            SecretBox("new-key").open(old, bound_to="t/ds")

    def test_empty_secrets_seal_to_nothing(self) -> None:
        box = SecretBox("k")
        assert box.seal({}, bound_to="t") == ""
        assert box.open("", bound_to="t") == {}
