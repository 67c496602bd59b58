"""Money as integer minor units, with each currency's number of decimals (ISO 4217 exponent)."""

from __future__ import annotations

__all__ = ["exponent", "format_money"]

#: ISO 4217 currencies without the usual two decimals
_EXPONENT = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def exponent(currency: str) -> int:
    """Decimals of a currency's minor unit.

    >>> exponent("CNY"), exponent("JPY"), exponent("KWD")
    (2, 0, 3)
    """
    return _EXPONENT.get(currency, 2)


def format_money(minor: int, currency: str) -> str:
    """An amount in minor units, written in major units.

    >>> format_money(1234550, "CNY")
    '12,345.50 CNY'
    >>> format_money(-500, "JPY")
    '-500 JPY'
    """
    places = exponent(currency)
    return f"{minor / 10**places:,.{places}f} {currency}"
