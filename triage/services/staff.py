"""Staff accounts and API tokens."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, func
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from werkzeug.security import check_password_hash, generate_password_hash

from triage.db import run, serialize
from triage.domain.errors import Conflict, InvalidInput, NotFound
from triage.domain.validation import UNUSABLE_NAME, usable_name
from triage.models import ApiToken, Role, StaffStamp, StaffUser

USER = StaffUser.__table__  # type: ignore[attr-defined]
TOKEN = ApiToken.__table__  # type: ignore[attr-defined]
STAMP = StaffStamp.__table__  # type: ignore[attr-defined]
ADMINS_LOCK = "staff.active_admins"
DISPLAY_NAME_MAX = 100  # staff_user.display_name


def digest(secret: str) -> str:
    """SHA-256 hex digest of a high-entropy secret (status links, API tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def canonical_username(text: str) -> str:
    """A username as stored and looked up: full-width letters and digits (a Chinese keyboard's) as plain ones."""
    return unicodedata.normalize("NFKC", text).strip()


def create_user(session: Session, *, username: str, password: str, role: Role,
                display_name: str | None = None) -> StaffUser:
    """Create a staff account with a hashed password; commits. A name that differs from another only by case is
    taken: "Admin" beside "admin" would be one person to a reader of the audit log. The name shown to colleagues
    (the username when none is given) passes the same check as a patient's name."""
    username = canonical_username(username)
    shown = (display_name or "").strip() or username
    errors: dict[str, tuple[str, str]] = {}
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        errors["username"] = ("用户名只能包含字母、数字、点、下划线和连字符（最多64个字符）。",
                              "Usernames use letters, digits, dots, underscores and hyphens (at most 64).")
    if len(shown) > DISPLAY_NAME_MAX:
        errors["display_name"] = (f"显示的姓名最多 {DISPLAY_NAME_MAX} 个字。",
                                  f"The name shown to colleagues can have at most {DISPLAY_NAME_MAX} characters.")
    elif not usable_name(shown):
        errors["display_name"] = UNUSABLE_NAME
    if len(password) < 8:
        errors["password"] = ("密码至少8个字符。", "The password must have at least 8 characters.")
    if errors:
        raise InvalidInput(errors)
    taken = Conflict("该用户名已存在。", "This username is already taken.", field="username")
    if session.exec(select(StaffUser).where(func.lower(StaffUser.username) == username.lower())).first() is not None:
        raise taken
    user = StaffUser(username=username, display_name=shown,
                     role=role.value, password_hash=generate_password_hash(password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        # Another administrator created the same username in the meantime (PostgreSQL: both checks passed).
        session.rollback()
        if session.exec(select(StaffUser.id).where(StaffUser.username == username)).first() is not None:
            raise taken from None
        raise
    return user


def authenticate(session: Session, username: str, password: str) -> StaffUser | None:
    """The active user with this username and password, or None."""
    user = session.exec(select(StaffUser).where(StaffUser.username == canonical_username(username))).first()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)  # same work whether or not the user exists
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def issue_token(session: Session, *, user: StaffUser, label: str = "") -> str:
    """Create an API token for `user`; returns the secret once, stores only its digest; commits."""
    secret = "trg_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id or 0, token_hash=digest(secret), label=label[:100]))
    session.commit()
    return secret


@dataclass(frozen=True, slots=True)
class Staff:
    """A signed-in member of staff, as a request needs them (read on every staff request, so kept light)."""

    id: int
    username: str
    display_name: str
    role: str
    active: bool
    session_epoch: int

    @classmethod
    def of(cls, user: StaffUser) -> Staff:
        """The request's view of an account."""
        return cls(user.id or 0, user.username, user.display_name, user.role, user.active, user.session_epoch)


_STAMP = select_columns(STAMP.c.stamp).where(STAMP.c.id == 1)
# The account and, read in the same snapshot, the staff stamp: what the cache may keep it under.
_STAFF_COLUMNS = (USER.c.id, USER.c.username, USER.c.display_name, USER.c.role, USER.c.active, USER.c.session_epoch,
                  _STAMP.scalar_subquery())
_BY_TOKEN = (select_columns(*_STAFF_COLUMNS).join_from(USER, TOKEN, TOKEN.c.user_id == USER.c.id)
             .where(TOKEN.c.token_hash == bindparam("token_hash"), TOKEN.c.revoked_at.is_(None)))
_BY_ID = select_columns(*_STAFF_COLUMNS).where(USER.c.id == bindparam("user_id"))


class AccountCache:
    """The accounts one worker has looked up (by token digest, by id), kept while the staff stamp holds.

    Every change to `staff_user` or `api_token` raises the stamp in its own transaction (database triggers,
    migration 0005). The stamp is read again when `seconds` have passed since it was last read: a deactivated
    account, a reset password or a revoked token stops working within that bound on every worker, and a nurse's
    request or a clinic screen's poll does not read its account each time. `seconds=0` reads the stamp at every
    look-up. Only accounts found are kept, and only when the stamp read with them is the one the cache holds (an
    account read in an older snapshot, by a thread that began before a change, is not kept); an unknown token is
    looked up every time.
    """

    def __init__(self, seconds: float, size: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self._entries: dict[Hashable, Staff] = {}
        self._stamp: int | None = None
        self._read_at = -float("inf")
        self._generation = 0  # raised when the entries are dropped: a look-up begun before keeps nothing
        self._lock = threading.Lock()

    def get(self, connection: Connection, key: Hashable,
            load: Callable[[], tuple[Staff | None, int | None]]) -> Staff | None:
        """The account under `key`, from `load()` (the account and the stamp read with it) when not kept."""
        now = self.clock()
        if now - self._read_at >= self.seconds:
            stamp = run(connection, _STAMP).scalar()
            with self._lock:
                if stamp != self._stamp:
                    self._forget(stamp)
                self._read_at = now
        kept = self._entries.get(key)
        if kept is not None:
            return kept
        generation = self._generation
        found, stamp = load()
        if found is not None:
            with self._lock:
                if generation == self._generation and stamp == self._stamp:
                    if len(self._entries) >= self.size:
                        self._forget(self._stamp)
                    self._entries[key] = found
        return found

    def _forget(self, stamp: int | None) -> None:
        self._entries = {}
        self._stamp = stamp
        self._generation += 1


def user_for_token(connection: Connection, secret: str, cache: AccountCache | None = None) -> Staff | None:
    """The active user owning this unrevoked API token, or None."""
    token_hash = digest(secret)

    def load() -> tuple[Staff | None, int | None]:
        row = run(connection, _BY_TOKEN, {"token_hash": token_hash}).first()
        return (Staff(*row[:6]), row[6]) if row is not None and row[4] else (None, None)

    return cache.get(connection, ("token", token_hash), load) if cache is not None else load()[0]


def staff_by_id(connection: Connection, user_id: int, cache: AccountCache | None = None) -> Staff | None:
    """The account with this id (active or not), or None."""

    def load() -> tuple[Staff | None, int | None]:
        row = run(connection, _BY_ID, {"user_id": user_id}).first()
        return (Staff(*row[:6]), row[6]) if row is not None else (None, None)

    return cache.get(connection, ("id", user_id), load) if cache is not None else load()[0]


def get_user(session: Session, username: str) -> StaffUser:
    """The staff user with this username, or NotFound."""
    user = session.exec(select(StaffUser).where(StaffUser.username == canonical_username(username))).first()
    if user is None:
        raise NotFound("没有这个用户。", "No such user.", field="username")
    return user




# --- staff management (administrators) ------------------------------------------------------------------


def list_users(session: Session) -> list[StaffUser]:
    """Every staff account, active first, then by username."""
    return list(session.exec(select(StaffUser).order_by(col(StaffUser.active).desc(), col(StaffUser.username))))


def user_by_id(session: Session, user_id: int) -> StaffUser:
    """The staff account with this id, or NotFound."""
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFound("没有这个用户。", "No such user.")
    return user


def _lock_user(session: Session, user_id: int) -> StaffUser:
    user = session.exec(select(StaffUser).where(StaffUser.id == user_id).with_for_update()).first()
    if user is None:
        raise NotFound("没有这个用户。", "No such user.")
    return user


def deactivate_user(session: Session, *, user_id: int, actor_id: int | None) -> StaffUser:
    """Deactivate an account: its sessions end and its API tokens stop working; commits.

    Administrators cannot deactivate themselves, nor the last active administrator (nobody could manage
    accounts any more). Whatever lowers the number of active administrators takes the `ADMINS_LOCK` first.
    """
    # Two administrators deactivating each other at once would each count two, and leave none.
    serialize(session, ADMINS_LOCK)
    user = _lock_user(session, user_id)
    if user.id == actor_id:
        raise Conflict("不能停用自己的账号。", "You cannot deactivate your own account.")
    if not user.active:
        raise Conflict("该账号已停用。", "This account is already deactivated.")
    if user.role == Role.ADMIN.value:
        admins = session.exec(select(func.count()).select_from(StaffUser).where(
            StaffUser.role == Role.ADMIN.value, col(StaffUser.active).is_(True))).one()
        if admins <= 1:
            raise Conflict("不能停用最后一个管理员账号。", "The last active administrator cannot be deactivated.")
    user.active = False
    user.session_epoch += 1
    session.add(user)
    session.commit()
    return user


def reactivate_user(session: Session, *, user_id: int) -> StaffUser:
    """Let a deactivated account log in again (with its password); commits."""
    user = _lock_user(session, user_id)
    if user.active:
        raise Conflict("该账号已是启用状态。", "This account is already active.")
    user.active = True
    session.add(user)
    session.commit()
    return user


def reset_password(session: Session, *, user_id: int, password: str) -> StaffUser:
    """Set a new password; every existing login session of the account ends; commits."""
    if len(password) < 8:
        raise InvalidInput({"password": ("密码至少8个字符。", "The password must have at least 8 characters.")})
    if len(password) > 256:
        raise InvalidInput({"password": ("密码最多256个字符。", "The password can have at most 256 characters.")})
    user = _lock_user(session, user_id)
    user.password_hash = generate_password_hash(password)
    user.session_epoch += 1
    session.add(user)
    session.commit()
    return user


def list_tokens(session: Session, *, user_id: int) -> list[ApiToken]:
    """A user's API tokens (digests only), newest first, revoked ones included."""
    return list(session.exec(select(ApiToken).where(ApiToken.user_id == user_id).order_by(col(ApiToken.id).desc())))


def revoke_token(session: Session, *, user_id: int, token_id: int, now: datetime | None = None) -> ApiToken:
    """Revoke one of a user's API tokens; commits. It stops working on every worker within ACCOUNT_CACHE_SECONDS (the
    staff stamp, see AccountCache)."""
    token = session.exec(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
                         .with_for_update()).first()
    if token is None:
        raise NotFound("没有这个令牌。", "No such token.")
    if token.revoked_at is not None:
        raise Conflict("该令牌已被吊销。", "This token is already revoked.")
    token.revoked_at = now or datetime.now(UTC)
    session.add(token)
    session.commit()
    return token
