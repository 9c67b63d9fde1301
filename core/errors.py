"""The app's error family: every message says what went wrong and what to do."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the UI shows to the user."""


class ConfigError(AppError):
    """A setting is missing or malformed."""


class DocumentError(AppError):
    """An uploaded file cannot be turned into a document."""


class EmptyFileError(DocumentError):
    """The file has no bytes, or no text at all."""


class FileTooLargeError(DocumentError):
    """The file is over the configured upload limit."""


class UnsafeFileNameError(DocumentError):
    """The file name carries path separators, `..` or control characters."""


class UnsupportedFileError(DocumentError):
    """The file type is not one the app ingests."""


class MismatchedFileTypeError(DocumentError):
    """The file's content does not match its extension."""


class CorruptFileError(DocumentError):
    """The file is damaged and cannot be parsed."""


class EncryptedFileError(DocumentError):
    """The PDF is password-protected."""


class NoTextError(DocumentError):
    """The file has no text, neither in a text layer nor in images OCR could read."""


class OcrError(DocumentError):
    """OCR cannot run in this install."""


class OcrLimitError(DocumentError):
    """A file needs more OCR (pages or seconds) than one upload is allowed."""


class ParseCancelled(AppError):
    """The user stopped an upload while a file was being read; nothing of it was stored."""


class StoreError(AppError):
    """The vector store refused or failed an operation."""


class StoreLockedError(StoreError):
    """Qdrant local storage is held by another process."""


class StoreUnavailableError(StoreError):
    """The Qdrant server cannot be reached."""


class KnowledgeBaseError(StoreError):
    """A knowledge base is missing, misnamed or already exists."""


class EmbeddingMismatchError(StoreError):
    """A knowledge base was built with another embedding model or dimension."""


class EmbeddingError(AppError):
    """The embedding model cannot be loaded or run."""


class TemplateError(AppError):
    """A prompt template is malformed, or cannot be rendered with what it was given."""


class ModelError(AppError):
    """A chat model cannot be loaded, reached or run."""


class ModelUnavailableError(ModelError):
    """The model's server (Ollama, an OpenAI-compatible one) is not reachable, or it does not have the model."""


class ServerRefusedError(ModelError):
    """A model server answered and refused the request; `reason` holds its own words."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DatasetError(AppError):
    """A dataset name, file or row is not acceptable."""


class DatasetExistsError(DatasetError):
    """Saving would replace a saved dataset of that name holding other pairs; the user must confirm."""


class TrainingError(AppError):
    """Training cannot start or failed."""


class TrainingCancelled(TrainingError):
    """The user stopped training; nothing was saved."""

    def __init__(self, message: str = "Training was stopped; no adapter was saved.") -> None:
        super().__init__(message)


class AdapterError(AppError):
    """An adapter name is taken or invalid, or its files are damaged."""


class ExportError(AppError):
    """The adapter cannot be written as a GGUF LoRA."""


class DataDirError(AppError):
    """DATA_DIR cannot be written (read-only, missing permissions, or the disk is full)."""


class EvaluationError(AppError):
    """A question set, an evaluation run or an imported report cannot be used."""


class BusyError(AppError):
    """A heavy job (training, registration, an evaluation, evaluate/train rounds) is running: one runs at a time."""
