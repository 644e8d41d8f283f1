"""Email addresses and phone numbers in the one form Conveyor stores: pure functions."""

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def normalize_email(value: str) -> str:
    """The address stripped and lowercased; raises ValidationError when it is not an address."""
    email = (value or "").strip().lower()
    if email:
        validate_email(email)
    return email


def normalize_phone(value: str, *, region: str) -> str:
    """The number in E.164 (`+14155550123`); `region` applies to numbers without a +prefix."""
    raw = (value or "").strip()
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, region.upper() or None)
    except phonenumbers.NumberParseException as error:
        raise ValidationError(f"{raw!r} is not a phone number.") from error
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"{raw!r} is not a valid phone number for region {region}.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
