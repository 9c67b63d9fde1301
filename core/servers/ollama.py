"""The Ollama server: its client, timeouts and the translation of its errors, for every room that talks to it.

ollama-python keeps every request behind one `Client._request`; the app keeps every Ollama call behind
`OllamaServer`: listing and `/api/show` (the model and embedding pickers), chat and embeddings (langchain-ollama,
given this host and these timeouts), blob uploads and `/api/create` (registering a fine-tuned model). Every
library error leaves this module as a `ModelError` that says what happened and what to do (`translate_error`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from core.errors import ModelError, ModelUnavailableError, ServerRefusedError

if TYPE_CHECKING:
    import ollama
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

CONNECT_TIMEOUT = 3.0  # connecting, listing, /api/show
READ_TIMEOUT = 120.0  # the longest silence in an answer
REGISTER_TIMEOUT = 600.0  # registering a model: uploading a 100 MB base, Ollama building the model from it
CONNECTION_HELP = "start it with `ollama serve`, or set OLLAMA_HOST=off to use the embedded models only"
PREFIX = "ollama:"  # a catalog id's prefix: `ollama:<model>`
# Model families that only embed, for an Ollama too old to report `capabilities` in /api/show.
_EMBEDDING_FAMILIES = frozenset({"bert", "nomic-bert", "xlm-roberta", "jina-bert", "jina-bert-v2", "new-bert"})
_PIECE = 1 << 20  # blob uploads go in 1 MB pieces, counted as they leave

T = TypeVar("T")


def num_ctx_for(prompt_chars: int, max_tokens: int) -> int:
    """A context window that fits the prompt and the answer: Ollama truncates silently otherwise.

    Counts 3 characters a token (generous for English, so we err on the large side), rounds up
    to a multiple of 1024, and never goes below Ollama's 2048 default.
    """
    needed = prompt_chars // 3 + max_tokens + 64
    return max(2048, -(-needed // 1024) * 1024)


class OllamaServer:
    """One Ollama server, at OLLAMA_HOST as the ollama client reads it (`host`, `host:port` or a URL)."""

    def __init__(self, host: str, *, timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> None:
        """Args: `timeout` for connecting and for requests answered at once; `read_timeout`, the longest silence.

        A server that stops sending (hung, or loading a model too big for it) fails its column after
        `read_timeout` seconds instead of holding it for ten minutes; other columns carry on.
        """
        self.host = host
        self.timeout = timeout
        self.read_timeout = read_timeout

    def client(self) -> ollama.Client:
        """The official client on this host: the one place the app makes one (it parses the host itself)."""
        import ollama

        return ollama.Client(host=self.host, timeout=self.timeout)

    def _request(self, subject: str, call: Callable[[ollama.Client], T]) -> T:
        """One call on a fresh client; any failure as a ModelError about `subject`."""
        try:
            return call(self.client())
        except Exception as e:  # noqa: BLE001 - translated by class in translate_error
            raise self.translate_error(e, subject) from e

    def model_names(self) -> list[str]:
        """The models pulled on the server (`/api/tags`)."""
        listed = self._request("the model list", lambda c: c.list().models)
        return [m.model for m in listed if m.model]

    def context_length(self, name: str) -> int | None:
        """The model's trained context (`<arch>.context_length` from /api/show), if Ollama says."""
        try:
            info = self._request(PREFIX + name, lambda c: c.show(name).modelinfo) or {}
        except ModelError:  # only used for a warning
            return None
        return next((int(v) for k, v in info.items() if k.endswith(".context_length")), None)

    def embedding_models(self) -> list[str]:
        """The pulled models that embed; one Ollama cannot describe is left out.

        A model counts when `/api/show` lists the `embedding` capability or, from an Ollama too old to report
        capabilities, when its family is an encoder such as BERT.
        """
        client = self.client()
        listed = self._request("the model list", lambda c: c.list().models)
        names = []
        for m in listed:
            if not m.model:
                continue
            try:
                capabilities = client.show(m.model).capabilities
            except Exception:  # noqa: BLE001 - a model Ollama cannot describe is not offered
                continue
            family = (m.details.family if m.details else None) or ""
            if "embedding" in (capabilities or []) or (capabilities is None and family in _EMBEDDING_FAMILIES):
                names.append(m.model)
        return names

    def chat(self, name: str, *, temperature: float, max_tokens: int, num_ctx: int) -> BaseChatModel:
        """langchain-ollama's ChatOllama on this server, with its timeouts; its errors go to `translate_error`."""
        from langchain_ollama import ChatOllama

        chat: BaseChatModel = ChatOllama(
            model=name,
            base_url=self.host,
            temperature=temperature,
            num_predict=max_tokens,
            num_ctx=num_ctx,
            client_kwargs={"timeout": httpx.Timeout(self.read_timeout, connect=self.timeout)},
        )
        return chat

    def embeddings(self, model: str) -> Embeddings:
        """langchain-ollama's OllamaEmbeddings (`/api/embed`) on this server.

        No read timeout: a batch is answered in one piece, after the whole of it is embedded.
        """
        from langchain_ollama import OllamaEmbeddings

        return OllamaEmbeddings(model=model, base_url=self.host)

    def has_blob(self, digest: str) -> bool:
        """Whether Ollama holds the blob (`HEAD /api/blobs/<digest>`), so a 100 MB base is uploaded once."""
        import ollama

        def head(client: ollama.Client) -> bool:
            try:
                _raw(client, "HEAD", f"/api/blobs/{digest}")
            except ollama.ResponseError as e:
                if e.status_code == 404:
                    return False
                raise
            return True

        return self._request(f"the blob {digest[:19]}…", head)

    def upload_blob(self, path: Path, digest: str, on_bytes: Callable[[int], None], subject: str) -> None:
        """POST the file as a blob in 1 MB pieces (what `Client.create_blob` sends), counting bytes as they go."""

        def pieces() -> Iterator[bytes]:
            with path.open("rb") as f:
                while block := f.read(_PIECE):
                    yield block
                    on_bytes(len(block))

        self._request(subject, lambda c: _raw(c, "POST", f"/api/blobs/{digest}", content=pieces()))

    def create(self, name: str, **request: Any) -> Iterable[str]:
        """`/api/create`, streamed: Ollama's status lines as they come ("success" last when it made the model)."""
        updates = self._request(name, lambda c: c.create(model=name, stream=True, **request))
        try:
            for update in updates:
                yield str(update.status or "")
        except Exception as e:  # noqa: BLE001 - the stream fails as it is read
            raise self.translate_error(e, name) from e

    def translate_error(self, e: Exception, subject: str) -> ModelError:
        """A library exception from a call about `subject` (a model id, or what was asked), in words."""
        import ollama

        if isinstance(e, ModelError):
            return e
        if isinstance(e, httpx.TimeoutException):
            return ModelUnavailableError(
                f"Ollama at {self.host} did not answer {subject} in time ({type(e).__name__}); it may be loading the "
                "model or overloaded. Try again, or pick a smaller model."
            )
        if isinstance(e, httpx.ConnectError | ConnectionError):
            # ollama's client turns httpx.ConnectError into the built-in ConnectionError.
            return unreachable(self.host, e)
        if isinstance(e, httpx.TransportError):  # RemoteProtocolError, ReadError: the server went away mid-answer
            return ModelUnavailableError(
                f"Ollama at {self.host} dropped the connection while answering with {subject} ({e}); check that "
                "`ollama serve` is still running, then ask again."
            )
        if isinstance(e, ollama.ResponseError):  # ollama's own error text, verbatim
            pull = e.status_code == 404 and subject.startswith(PREFIX)
            hint = f" Pull it with `ollama pull {subject.removeprefix(PREFIX)}`." if pull else ""
            return ServerRefusedError(f"Ollama refused {subject}: {e.error}.{hint}", reason=e.error)
        return ModelError(f"{subject} failed while answering: {e}")


def _raw(client: ollama.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request on the client's own path (its URL, headers, and errors as `ResponseError`).

    The client has no public call that asks whether a blob exists, nor one that uploads it piece by piece;
    `Client.create_blob` sends its POST this way.
    """
    response: httpx.Response = client._request_raw(method, path, **kwargs)  # type: ignore[no-untyped-call]
    return response


def unreachable(host: str, e: Exception) -> ModelUnavailableError:
    return ModelUnavailableError(f"Ollama is not reachable at {host} ({e}); {CONNECTION_HELP}.")
