"""The few error classes of fazhi-qa. Every message says what to do next."""


class RagError(Exception):
    """Base class: anything the user can act on. CLI and HTTP turn it into a message."""

    http_status = 500


class ConfigError(RagError):
    """A setting is missing or invalid."""

    http_status = 500


class ModelUnavailableError(RagError):
    """A model package is not installed or a model file cannot be built."""

    http_status = 503


class BadFileError(RagError):
    """A report cannot be read: empty, binary, undecodable, too big or of an unknown type."""

    http_status = 415


class IngestError(RagError):
    """An ingest could not be completed; the previous index is left as it was."""

    http_status = 500


class IngestBusyError(IngestError):
    """Another ingest holds the data folder's lock."""

    http_status = 409


class DuplicateReportError(IngestError):
    """A report's bytes are in the knowledge base already, under another name."""

    http_status = 409


class IndexUnavailableError(RagError):
    """The Chroma server does not answer; questions work again once it is back."""

    http_status = 503


class IndexMissingError(RagError):
    """Nothing has been ingested yet."""

    http_status = 503


class QuestionError(RagError):
    """The question is empty, too long or malformed."""

    http_status = 422


class QuestionTooLongError(QuestionError):
    """The question is longer than answer.max_question_chars."""

    http_status = 413


class LLMUnavailableError(RagError):
    """The language model server is down, timed out or answered garbage."""

    http_status = 503


class BadRequestError(RagError):
    """A request the API cannot act on as given."""

    http_status = 400


class UnsafePathError(BadRequestError):
    """A report name that points outside the reports folder."""


class ReportNotFoundError(RagError):
    """No report of that name in the knowledge base."""

    http_status = 404


class UploadTooLargeError(RagError):
    """An upload over server.max_upload_mb."""

    http_status = 413


class UnauthorizedError(RagError):
    """A missing or wrong API key."""

    http_status = 401


class RateLimitError(RagError):
    """More requests than server.requests_per_minute from one client."""

    http_status = 429


class UnknownModelError(RagError):
    """An OpenAI-style request for a model this server does not serve."""

    http_status = 404
