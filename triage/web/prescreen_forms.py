"""Flask-WTF forms of the online pre-screen and the staff contact pages.

The forms parse what was typed (numbers, choices) and say so beside the field in plain words; the
rules that decide whether a pre-screen can be accepted live in the service, so the HTML form and the
JSON API validate the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, ClassVar

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from triage.domain.policy import Policy
from triage.domain.validation import read_number, whole_number
from triage.domain.vocabulary import CONDITIONS, EXPOSURES, NEEDS, SYMPTOMS
from triage.services.contacts import CONTACT_CHANNELS, CONTACT_OUTCOMES, MANUAL_OUTCOMES, label
from triage.services.slots import describe_day

NONE_OF_THESE = "none"


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes (several answers)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form: Any) -> None:
        """An answer that is not one of the boxes is refused in the user's language (WTForms' own Chinese catalog
        lacks this message)."""
        if not self.validate_choice or not self.data:
            return
        known = {choice[0] for choice in self.iter_choices()}
        unknown = [str(value)[:40] for value in self.data if value not in known]
        if unknown:
            raise ValidationError(_("“%(value)s” is not one of the choices here.", value=unknown[0]))


def choices(pairs: Iterable[tuple[str, Any]]) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


def _text(lang: str, zh: str, en: str) -> str:
    return en if lang == "en" else zh


def _number(raw: str | None, *, whole: bool) -> float | int | None:
    value = read_number(raw)  # ValueError is turned into the field's message by the caller
    if value is None:
        return None
    if whole:
        if value != int(value):
            raise ValueError(raw)
        return value if isinstance(value, int) else whole_number(value)
    return float(value)


class PrescreenForm(FlaskForm):
    """The questionnaire: who is coming, how they are, why, and when."""

    family = HiddenField()
    name = StringField(_l("Name of the patient"), validators=[Length(max=50, message=_l("At most 50 characters."))])
    phone = TelField(_l("Mobile phone number"))
    age_years = StringField(_l("Age (years)"))
    age_days = StringField(_l("Baby's age in days"))
    sex = RadioField(_l("Sex"), choices=choices([("F", _l("Female")), ("M", _l("Male"))]), validate_choice=False)
    pregnant = BooleanField(_l("I am pregnant"))
    pregnancy_weeks = StringField(_l("Weeks of pregnancy"))
    temperature_c = StringField(_l("Temperature in °C, if you measured it"))
    danger = MultiCheckboxField(_l("Right now, do you have any of these?"), validate_choice=True)
    common = MultiCheckboxField(_l("Fever, cough or cold signs"), validate_choice=True)
    other = MultiCheckboxField(_l("Other problems"), validate_choice=True)
    epi = MultiCheckboxField(_l("In the last 14 days"), validate_choice=True)
    conditions = MultiCheckboxField(_l("Long-term illnesses"), validate_choice=True)
    needs = MultiCheckboxField(_l("What you need from this visit"), validate_choice=True)
    visit_reason = StringField(_l("Department or reason for the visit"),
                               validators=[Length(max=200, message=_l("At most 200 characters."))])
    preferred_day = SelectField(_l("Which day would you like to come?"), validate_choice=False)
    consent = BooleanField(_l("I agree that the hospital uses these answers to arrange this visit."))

    def setup(self, policy: Policy, lang: str, days: Iterable[date], today: date) -> None:
        """Fill the choices in the user's language (codes and labels from the engine's vocabulary)."""
        window = policy.clinical.exposure_window_days
        self.danger.choices = choices((s.code, _text(lang, s.zh, s.en)) for s in SYMPTOMS if s.red_flag)
        self.common.choices = choices((s.code, _text(lang, s.zh, s.en)) for s in SYMPTOMS if s.infection)
        self.other.choices = choices((s.code, _text(lang, s.zh, s.en)) for s in SYMPTOMS
                                     if not s.red_flag and not s.infection)
        self.epi.label.text = _text(lang, f"近 {window} 天内", f"In the last {window} days")
        self.epi.choices = choices([*((e.code, _text(lang, e.zh, e.en).format(days=window)) for e in EXPOSURES),
                                    (NONE_OF_THESE, _text(lang, "以上都没有", "None of these"))])
        self.conditions.choices = choices((c.code, _text(lang, c.zh, c.en)) for c in CONDITIONS)
        self.needs.choices = choices((n.code, _text(lang, n.zh, n.en)) for n in NEEDS)
        closed = _text(lang, "（普通门诊休息）", " (outpatient clinics closed)")
        hours = policy.outpatient_hours
        self.preferred_day.choices = choices(
            (d.isoformat(), describe_day(d, lang, today=today) + ("" if hours.is_open_on(d) else closed)) for d in days)

    def hints(self, lang: str) -> dict[str, str]:
        """Plain-word hints of the symptom codes that have one."""
        return {s.code: _text(lang, s.hint_zh, s.hint_en) for s in SYMPTOMS if s.hint_zh}

    # --- parsing: a message beside the field when the text is not a number ---------------------------

    def validate_age_years(self, field: StringField) -> None:
        """Age in whole years."""
        self._parse(field, whole=True, message=_l("Enter the age in whole years, for example 45 (0 for a baby)."))

    def validate_age_days(self, field: StringField) -> None:
        """Age in days, for babies."""
        self._parse(field, whole=True, message=_l("Enter the baby's age in whole days, for example 20."))

    def validate_pregnancy_weeks(self, field: StringField) -> None:
        """Weeks of pregnancy; required when "pregnant" is ticked."""
        self._parse(field, whole=False, message=_l("Enter the weeks of pregnancy as a number, for example 32."))
        if self.pregnant.data and not (field.data or "").strip():
            raise ValidationError(_l("Enter the weeks of pregnancy (an estimate is fine)."))

    def validate_temperature_c(self, field: StringField) -> None:
        """Temperature in Celsius."""
        self._parse(field, whole=False, message=_l("Enter the temperature as a number, for example 37.5."))

    def validate_epi(self, field: MultiCheckboxField) -> None:
        """Every patient answers the exposure questions: what applies, or "none of these"."""
        chosen = set(field.data or [])
        if not chosen:
            raise ValidationError(_l("Answer this question: tick what applies, or \u201cNone of these\u201d."))
        if NONE_OF_THESE in chosen and len(chosen) > 1:
            raise ValidationError(_l("You ticked \u201cNone of these\u201d and a situation: tick only what is true."))

    @staticmethod
    def _parse(field: StringField, *, whole: bool, message: Any) -> None:
        try:
            _number(field.data, whole=whole)
        except ValueError:
            raise ValidationError(message) from None

    # --- what the service receives --------------------------------------------------------------------

    def _value(self, field: StringField, *, whole: bool) -> float | int | None:
        if field.errors:
            return None
        try:
            return _number(field.data, whole=whole)
        except ValueError:
            return None

    def answers(self) -> dict[str, Any]:
        """The engine's input from what parsed (fields with errors are left out)."""
        symptoms = [*(self.danger.data or []), *(self.common.data or []), *(self.other.data or [])]
        weeks = self._value(self.pregnancy_weeks, whole=False)
        epi_chosen = set(self.epi.data or [])
        answers: dict[str, Any] = {
            "age_years": self._value(self.age_years, whole=True),
            "age_days": self._value(self.age_days, whole=True),
            "sex": self.sex.data if self.sex.data in ("F", "M") else None,
            "pregnancy_weeks": weeks if (self.pregnant.data or weeks is not None) else None,
            "temperature_c": self._value(self.temperature_c, whole=False),
            "symptoms": symptoms,
            "chronic_conditions": list(self.conditions.data or []),
            "needs": list(self.needs.data or []),
            "epi": ({e.code: e.code in epi_chosen for e in EXPOSURES}
                    if epi_chosen and not self.epi.errors else None),
        }
        if answers["age_years"] != 0:
            answers["age_days"] = None  # only asked for babies; a stray value must not contradict the age
        return answers

    def day(self) -> date | None:
        """The chosen day, if it is a date."""
        try:
            return date.fromisoformat(self.preferred_day.data or "")
        except ValueError:
            return None

    # Where the service's and engine's field errors are shown.
    FIELD_FOR: ClassVar[dict[str, str]] = {
        "symptoms": "other", "chronic_conditions": "conditions", "needs": "needs", "epi": "epi",
        "name": "name", "phone": "phone", "age_years": "age_years", "age_days": "age_days", "sex": "sex",
        "pregnancy_weeks": "pregnancy_weeks", "temperature_c": "temperature_c", "visit_reason": "visit_reason",
        "preferred_day": "preferred_day", "consent": "consent",
    }

    def add_errors(self, errors: dict[str, str]) -> list[str]:
        """Put service errors beside their fields (a field's own parse error wins); returns the rest."""
        rest = []
        for key, message in errors.items():
            name = self.FIELD_FOR.get(key) or self.FIELD_FOR.get(key.split(".", 1)[0])
            target = getattr(self, name, None) if name else None
            if target is None:
                rest.append(message)
            elif not target.errors:
                target.errors = [*target.errors, message]
        return rest

    @property
    def has_errors(self) -> bool:
        """Whether any field carries an error."""
        return any(f.errors for f in self)


class LookupForm(FlaskForm):
    """Find a visit by its code and the phone number given."""

    reference = StringField(_l("Reference code"), validators=[
        DataRequired(_l("Enter the code on your pass, for example K7P2-M9QX.")), Length(max=20)])
    phone = TelField(_l("Mobile phone number"), validators=[
        DataRequired(_l("Enter the phone number you gave.")), Length(max=32)])


class SlotForm(FlaskForm):
    """Choose a time slot."""

    slot = RadioField(_l("Choose a time"), validate_choice=False,
                      validators=[DataRequired(_l("Choose a time."))])


class ActionForm(FlaskForm):
    """A button that changes a visit (cancel, callback, online follow-up): only the CSRF token."""


class ContactForm(FlaskForm):
    """Staff record one attempt to reach a patient."""

    channel = RadioField(_l("How"), validate_choice=False, default="phone",
                         validators=[DataRequired(_l("Choose how."))])
    outcome = RadioField(_l("Outcome"), validate_choice=False, validators=[DataRequired(_l("Choose the outcome."))])
    note = TextAreaField(_l("Note"), validators=[Length(max=2000, message=_l("At most 2000 characters."))])

    def setup(self, lang: str) -> None:
        """Choices in the user's language."""
        self.channel.choices = choices((code, label(CONTACT_CHANNELS, code, lang)) for code in CONTACT_CHANNELS)
        self.outcome.choices = choices((code, label(CONTACT_OUTCOMES, code, lang)) for code in MANUAL_OUTCOMES)


class StaffMoveForm(SlotForm):
    """Staff move a visit after talking to the patient."""

    channel = RadioField(_l("How"), validate_choice=False, default="phone")  # labels set per language by the page

    def validate(self, extra_validators: Any = None) -> bool:
        """The time and how the patient was reached, one of the contact channels (checked before anything is stored).

        A wrong channel is reported beside the time: the page shows the time's errors even where it shows no form
        (a visit that can no longer be moved), and a browser only sends a channel it was offered.
        """
        valid = super().validate(extra_validators)
        if self.channel.data not in CONTACT_CHANNELS:
            self.slot.errors = [*self.slot.errors,
                                _l("Choose how the patient was reached: phone, text message or in person.")]
            return False
        return valid


class StaffCancelForm(FlaskForm):
    """Staff cancel a visit on the patient's behalf, with the reason."""

    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give the reason.")),
                                                     Length(max=500, message=_l("At most 500 characters."))])


class CallbackDoneForm(FlaskForm):
    """Staff close a callback request."""

    outcome = StringField(_l("What was agreed"), validators=[
        DataRequired(_l("Write down what was agreed.")), Length(max=200, message=_l("At most 200 characters."))])
