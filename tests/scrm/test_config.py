from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from scrm.config import Settings, load_settings
from scrm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = '[accounts.main]\nplatform = "wechat"\nappid = "wx1"\nsecret = "shh-its-secret"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.source is None
    assert settings.scrm.timezone == "Asia/Shanghai"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'scrm.db'}"


def test_relative_sqlite_paths_follow_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///data/x.db"\n')
    assert load_settings(path, environ={}).database_url == f"sqlite:///{tmp_path / 'data/x.db'}"


def _leaf_keys(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if name in ("source", "accounts", "rules"):  # tables of examples, shown commented out
            continue
        key = field.alias or name
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            keys.update(_leaf_keys(value, f"{prefix}{key}."))
        else:  # a secret is shown in the file as its (empty) default
            keys[f"{prefix}{key}"] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return keys


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_shipped_config_documents_every_setting_with_its_default() -> None:
    shipped = _flatten(tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8")))
    assert shipped == _leaf_keys(Settings())
    load_settings(ROOT / "config.toml", environ={})  # and it validates


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nulr = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert f"{path}: database.ulr: unknown key" in str(info.value)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[import]\nbatch_size = "many"\n')
    with pytest.raises(ConfigError, match=r"import\.batch_size: .*integer"):
        load_settings(path, environ={})


def test_missing_credential_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[accounts.main]\nplatform = "wechat"\nappid = "wx1"\n')
    with pytest.raises(ConfigError, match=r"accounts\.main\.secret: missing"):
        load_settings(path, environ={})


def test_unknown_platform_and_bad_zone(tmp_path: Path) -> None:
    path = write(tmp_path, '[scrm]\ntimezone = "Mars/Olympus"\n[accounts.x]\nplatform = "myspace"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "scrm.timezone: unknown time zone 'Mars/Olympus'" in str(info.value)
    assert "accounts.x: unknown platform" in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[database\n"), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="named by SCRM_CONFIG"):
        load_settings(environ={"SCRM_CONFIG": str(tmp_path / "nope.toml")})


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    path = write(tmp_path, ACCOUNT)
    env = {
        "SCRM_DATABASE__URL": "postgresql://db/scrm",
        "SCRM_IMPORT__BATCH_SIZE": "500",
        "SCRM_ACCOUNTS__MAIN__SECRET": "from-env",
        "SCRM_CONFIG": str(path),
    }
    settings = load_settings(environ=env)
    assert settings.database_url == "postgresql://db/scrm"
    assert settings.imports.batch_size == 500
    assert settings.accounts["main"].secret.get_secret_value() == "from-env"


def test_a_bad_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable SCRM_IMPORT__BATCHSIZE"):
        load_settings(write(tmp_path, ""), environ={"SCRM_IMPORT__BATCHSIZE": "5"})


def test_secrets_never_show(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ACCOUNT), environ={})
    assert "shh-its-secret" not in repr(settings)
    assert "shh-its-secret" not in str(settings.model_dump())
