import createError from '@fastify/error'

/** Thrown at `register` when an option has the wrong type or an out-of-range value. */
export const FST_CHAT_INVALID_OPTION = createError<'FST_CHAT_INVALID_OPTION', [string, string]>(
  'FST_CHAT_INVALID_OPTION',
  'fastify-chat: option "%s" %s',
  500,
  TypeError
)

/** Thrown by `app.chat` methods when a room name does not match `^[A-Za-z0-9_-]{1,64}$`. */
export const FST_CHAT_INVALID_ROOM = createError<'FST_CHAT_INVALID_ROOM', [string]>(
  'FST_CHAT_INVALID_ROOM',
  'fastify-chat: invalid room name %s',
  400,
  TypeError
)

/** Thrown by `app.chat.broadcast` when the text is empty or too long. */
export const FST_CHAT_INVALID_MESSAGE = createError<'FST_CHAT_INVALID_MESSAGE', [string]>(
  'FST_CHAT_INVALID_MESSAGE',
  'fastify-chat: invalid message: %s',
  400,
  TypeError
)

/** Thrown by `app.chat` methods for an argument of the wrong type or range. */
export const FST_CHAT_INVALID_ARGUMENT = createError<'FST_CHAT_INVALID_ARGUMENT', [string, string]>(
  'FST_CHAT_INVALID_ARGUMENT',
  'fastify-chat: argument "%s" %s',
  400,
  TypeError
)

/** Thrown by `app.chat` methods once the app is closing. */
export const FST_CHAT_CLOSED = createError<'FST_CHAT_CLOSED', []>(
  'FST_CHAT_CLOSED',
  'fastify-chat: the chat is closed',
  503
)

/** Thrown when a history store cannot be opened (at `register`) or is used after `close()`. */
export const FST_CHAT_STORE_UNAVAILABLE = createError<'FST_CHAT_STORE_UNAVAILABLE', [string, string, { cause: unknown }?]>(
  'FST_CHAT_STORE_UNAVAILABLE',
  'fastify-chat: cannot open history store at %s: %s',
  500
)

/** Thrown at `register` (or by `app.chat`) when the adapter cannot reach its backend. */
export const FST_CHAT_ADAPTER_UNAVAILABLE = createError<'FST_CHAT_ADAPTER_UNAVAILABLE', [string, { cause: unknown }?]>(
  'FST_CHAT_ADAPTER_UNAVAILABLE',
  'fastify-chat: adapter unavailable: %s',
  503
)

/** Thrown by `app.chat.history` with `before` when the store (or adapter) cannot page back: it has no `before()`. */
export const FST_CHAT_UNSUPPORTED = createError<'FST_CHAT_UNSUPPORTED', [string]>(
  'FST_CHAT_UNSUPPORTED',
  'fastify-chat: %s',
  501
)
