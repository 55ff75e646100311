/* The C API from C: bad arguments must come back as errors (checked here), and the results
 * of generation, tokenization and embedding are printed as JSON lines for the Rust harness
 * (tests/c_api.rs) to compare with `trustformers generate --json` / `embed --json`.
 *
 * Usage: test_api CHAT_MODEL EMBED_MODEL PROMPT MAX_NEW_TOKENS
 * Exit status 0 when every check passed; a failed check prints "FAIL ..." to stderr. */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trustformers.h"

static int failures = 0;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, " (last error: %s)\n", trustformers_last_error());   \
      failures++;                                                          \
    }                                                                      \
  } while (0)

#define EXPECT_STATUS(call, want)                                                      \
  do {                                                                                 \
    trustformers_status got_ = (call);                                                 \
    CHECK(got_ == (want), "%s returned %d, expected %d", #call, (int)got_, (int)(want)); \
    if ((want) != TRUSTFORMERS_OK)                                                     \
      CHECK(strlen(trustformers_last_error()) > 0, "%s left no error message", #call); \
  } while (0)

/* Prints `s` as a JSON string. */
static void json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"': fputs("\\\"", stdout); break;
      case '\\': fputs("\\\\", stdout); break;
      case '\n': fputs("\\n", stdout); break;
      case '\r': fputs("\\r", stdout); break;
      case '\t': fputs("\\t", stdout); break;
      default:
        if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
  }
  putchar('"');
}

static void json_ids(const uint32_t *ids, size_t n) {
  putchar('[');
  for (size_t i = 0; i < n; i++) printf(i ? ",%u" : "%u", ids[i]);
  putchar(']');
}

/* Collects streamed pieces; stops after `stop_after` pieces when that is non-zero. */
struct stream {
  char text[65536];
  size_t len;
  int pieces;
  int stop_after;
};

static int on_text(const char *text, size_t len, void *user_data) {
  struct stream *s = (struct stream *)user_data;
  if (strlen(text) != len) return 1;
  if (s->len + len < sizeof s->text) {
    memcpy(s->text + s->len, text, len);
    s->len += len;
    s->text[s->len] = '\0';
  }
  s->pieces++;
  return s->stop_after && s->pieces >= s->stop_after;
}


/* Four threads generating on one session at once give the sequential text. */
struct worker {
  trustformers_session *session;
  const char *prompt;
  const trustformers_generate_options *opts;
  char *text;
  trustformers_status status;
};

static void *work(void *arg) {
  struct worker *w = (struct worker *)arg;
  w->status = trustformers_session_generate(w->session, w->prompt, w->opts, NULL, NULL, &w->text);
  return NULL;
}

static void threads(trustformers_session *session, const char *prompt,
                    const trustformers_generate_options *opts, const char *want) {
  pthread_t ids[4];
  struct worker workers[4];
  for (int i = 0; i < 4; i++) {
    workers[i] = (struct worker){session, prompt, opts, NULL, TRUSTFORMERS_INTERNAL};
    CHECK(pthread_create(&ids[i], NULL, work, &workers[i]) == 0, "pthread_create");
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(ids[i], NULL);
    CHECK(workers[i].status == TRUSTFORMERS_OK && workers[i].text && strcmp(workers[i].text, want) == 0,
          "thread %d: status %d, text differs", i, (int)workers[i].status);
    trustformers_string_free(workers[i].text);
  }
}

static void bad_arguments(trustformers_session *session, trustformers_embedder *embedder) {
  uint32_t ids[4] = {0};
  size_t n = 0;
  char *text = NULL;
  trustformers_tokenizer *tok = NULL;

  /* Null handles and pointers. */
  EXPECT_STATUS(trustformers_tokenizer_encode(NULL, "a", 1, ids, 4, &n), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_session_generate(NULL, "a", NULL, NULL, NULL, &text), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_session_generate(session, NULL, NULL, NULL, NULL, &text), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_session_load("tests/no/such/model", NULL, NULL), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_session_tokenizer(session, NULL), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_embedder_dimension(embedder, NULL), TRUSTFORMERS_INVALID_ARGUMENT);

  /* Missing and malformed models. */
  trustformers_session *none = NULL;
  EXPECT_STATUS(trustformers_session_load("/no/such/dir/model.gguf", NULL, &none), TRUSTFORMERS_NOT_FOUND);
  CHECK(none == NULL, "a failed load wrote a handle");
  EXPECT_STATUS(trustformers_tokenizer_load("./no-such-dir", &tok), TRUSTFORMERS_NOT_FOUND);

  /* A handle of another kind, and a garbage handle. */
  EXPECT_STATUS(trustformers_tokenizer_encode((trustformers_tokenizer *)session, "a", 1, ids, 4, &n),
                TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_session_free((trustformers_session *)(uintptr_t)0x1234560),
                TRUSTFORMERS_INVALID_ARGUMENT);

  /* A freed handle, and freeing it twice. */
  EXPECT_STATUS(trustformers_session_tokenizer(session, &tok), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_tokenizer_free(tok), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_tokenizer_encode(tok, "a", 1, ids, 4, &n), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_tokenizer_free(tok), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_tokenizer_free(NULL), TRUSTFORMERS_OK);

  /* Invalid UTF-8. */
  EXPECT_STATUS(trustformers_session_tokenizer(session, &tok), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_tokenizer_encode(tok, "ab\xff\xfe", 1, ids, 4, &n), TRUSTFORMERS_INVALID_ARGUMENT);
  CHECK(strstr(trustformers_last_error(), "UTF-8") != NULL, "the UTF-8 error does not say so");

  /* A buffer too small gets the length needed and nothing else. */
  const char *long_text = "a much longer text than four tokens";
  n = 0;
  EXPECT_STATUS(trustformers_tokenizer_encode(tok, long_text, 1, ids, 2, &n), TRUSTFORMERS_BUFFER_TOO_SMALL);
  CHECK(n > 2, "the needed length was not written (%zu)", n);
  EXPECT_STATUS(trustformers_tokenizer_encode(tok, long_text, 1, NULL, 0, &n), TRUSTFORMERS_BUFFER_TOO_SMALL);
  EXPECT_STATUS(trustformers_tokenizer_encode(tok, long_text, 1, NULL, 5, &n), TRUSTFORMERS_INVALID_ARGUMENT);
  /* Lengths that overflow. */
  EXPECT_STATUS(trustformers_tokenizer_decode(tok, ids, SIZE_MAX, 0, &text), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_embedder_embed(embedder, (const char *const *)ids, SIZE_MAX / 2, 0, NULL, 0, &n),
                TRUSTFORMERS_INVALID_ARGUMENT);
  float one[1];
  const char *texts[2] = {"first text", "second text"};
  EXPECT_STATUS(trustformers_embedder_embed(embedder, texts, 2, 0, one, 1, &n), TRUSTFORMERS_BUFFER_TOO_SMALL);
  size_t dim = 0;
  EXPECT_STATUS(trustformers_embedder_dimension(embedder, &dim), TRUSTFORMERS_OK);
  CHECK(n == 2 * dim, "embed asked for %zu floats, expected %zu", n, 2 * dim);
  EXPECT_STATUS(trustformers_tokenizer_free(tok), TRUSTFORMERS_OK);

  /* Bad generation settings and messages. */
  trustformers_generate_options opts;
  EXPECT_STATUS(trustformers_generate_options_default(&opts), TRUSTFORMERS_OK);
  opts.config_json = "{\"max_new_tokens\": ";
  EXPECT_STATUS(trustformers_session_generate(session, "a", &opts, NULL, NULL, &text), TRUSTFORMERS_INVALID_ARGUMENT);
  opts.config_json = "{\"top_p\": 7}";
  EXPECT_STATUS(trustformers_session_generate(session, "a", &opts, NULL, NULL, &text), TRUSTFORMERS_INVALID_ARGUMENT);
  CHECK(strstr(trustformers_last_error(), "top_p") != NULL, "the error does not name top_p");
  opts.config_json = "{\"max_new_tokens\": 4}";
  uint32_t out_ids[2];
  EXPECT_STATUS(trustformers_session_generate_ids(session, ids, 1, &opts, out_ids, 2, &n), TRUSTFORMERS_BUFFER_TOO_SMALL);
  CHECK(n == 4, "generate_ids asked for %zu ids, expected 4", n);
  uint32_t huge = 0xFFFFFFF0u;
  uint32_t four[4];
  EXPECT_STATUS(trustformers_session_generate_ids(session, &huge, 1, &opts, four, 4, &n), TRUSTFORMERS_INVALID_ARGUMENT);
  EXPECT_STATUS(trustformers_session_apply_chat_template(session, "[{\"role\": 1}]", 1, &text), TRUSTFORMERS_INVALID_ARGUMENT);
  trustformers_load_options lopts;
  EXPECT_STATUS(trustformers_load_options_default(&lopts), TRUSTFORMERS_OK);
  lopts.dtype = "int3";
  EXPECT_STATUS(trustformers_embedder_load("x", &lopts, (trustformers_embedder **)&none), TRUSTFORMERS_INVALID_ARGUMENT);

  /* Strings: NULL is fine to free, a pointer the library did not return is refused. */
  EXPECT_STATUS(trustformers_string_free(NULL), TRUSTFORMERS_OK);
  char not_ours[4] = "abc";
  EXPECT_STATUS(trustformers_string_free(not_ours), TRUSTFORMERS_INVALID_ARGUMENT);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s CHAT_MODEL EMBED_MODEL PROMPT MAX_NEW_TOKENS\n", argv[0]);
    return 2;
  }
  const char *chat_model = argv[1], *embed_model = argv[2], *prompt = argv[3];
  char config[128];
  snprintf(config, sizeof config, "{\"max_new_tokens\": %d}", atoi(argv[4]));

  CHECK(strlen(trustformers_version()) > 0, "no version");
  trustformers_load_options lopts;
  EXPECT_STATUS(trustformers_load_options_default(&lopts), TRUSTFORMERS_OK);
  trustformers_session *session = NULL;
  EXPECT_STATUS(trustformers_session_load(chat_model, &lopts, &session), TRUSTFORMERS_OK);
  trustformers_embedder *embedder = NULL;
  EXPECT_STATUS(trustformers_embedder_load(embed_model, NULL, &embedder), TRUSTFORMERS_OK);
  if (!session || !embedder) return 1;

  /* Generation: streamed pieces add up to the text; the ids follow the prompt's ids. */
  trustformers_generate_options opts;
  EXPECT_STATUS(trustformers_generate_options_default(&opts), TRUSTFORMERS_OK);
  opts.config_json = config;
  struct stream s = {{0}, 0, 0, 0};
  char *text = NULL;
  EXPECT_STATUS(trustformers_session_generate(session, prompt, &opts, on_text, &s, &text), TRUSTFORMERS_OK);
  CHECK(text && strcmp(text, s.text) == 0, "streamed pieces differ from the text");
  uint32_t prompt_ids[4096], new_ids[4096];
  size_t n_prompt = 0, n_new = 0;
  EXPECT_STATUS(trustformers_session_prompt_ids(session, prompt, 0, prompt_ids, 4096, &n_prompt), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_session_generate_ids(session, prompt_ids, n_prompt, &opts, new_ids, 4096, &n_new),
                TRUSTFORMERS_OK);
  printf("{\"generate\": {\"text\": ");
  json_string(text ? text : "");
  printf(", \"token_ids\": ");
  json_ids(new_ids, n_new);
  printf(", \"prompt_ids\": ");
  json_ids(prompt_ids, n_prompt);
  printf("}}\n");
  threads(session, prompt, &opts, text ? text : "");
  EXPECT_STATUS(trustformers_string_free(text), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_string_free(text), TRUSTFORMERS_INVALID_ARGUMENT);

  /* A callback returning non-zero stops generation. */
  struct stream stopped = {{0}, 0, 0, 2};
  EXPECT_STATUS(trustformers_session_generate(session, prompt, &opts, on_text, &stopped, NULL), TRUSTFORMERS_OK);
  CHECK(stopped.pieces == 2, "the callback asked to stop after 2 pieces, got %d", stopped.pieces);

  /* The chat template and the tokenizer. */
  char *chat = NULL;
  EXPECT_STATUS(trustformers_session_apply_chat_template(
                    session, "[{\"role\": \"user\", \"content\": \"hi\"}]", 1, &chat),
                TRUSTFORMERS_OK);
  trustformers_tokenizer *tok = NULL;
  EXPECT_STATUS(trustformers_session_tokenizer(session, &tok), TRUSTFORMERS_OK);
  uint32_t ids[256];
  size_t n = 0;
  EXPECT_STATUS(trustformers_tokenizer_encode(tok, prompt, 1, ids, 256, &n), TRUSTFORMERS_OK);
  char *decoded = NULL;
  EXPECT_STATUS(trustformers_tokenizer_decode(tok, ids, n, 1, &decoded), TRUSTFORMERS_OK);
  printf("{\"chat\": ");
  json_string(chat ? chat : "");
  printf(", \"encode\": ");
  json_ids(ids, n);
  printf(", \"decode\": ");
  json_string(decoded ? decoded : "");
  printf("}\n");
  trustformers_string_free(chat);
  trustformers_string_free(decoded);
  EXPECT_STATUS(trustformers_tokenizer_free(tok), TRUSTFORMERS_OK);

  /* Embeddings into the caller's buffer. */
  const char *texts[3] = {"the weather is sunny today", "john lives in london", "a"};
  size_t dim = 0;
  EXPECT_STATUS(trustformers_embedder_dimension(embedder, &dim), TRUSTFORMERS_OK);
  float *emb = calloc(3 * dim, sizeof(float));
  EXPECT_STATUS(trustformers_embedder_embed(embedder, texts, 3, 0, emb, 3 * dim, &n), TRUSTFORMERS_OK);
  CHECK(n == 3 * dim, "embed wrote %zu floats", n);
  printf("{\"embeddings\": [");
  for (size_t i = 0; i < 3; i++) {
    printf(i ? ",[" : "[");
    for (size_t j = 0; j < dim; j++) printf(j ? ",%.9g" : "%.9g", emb[i * dim + j]);
    putchar(']');
  }
  printf("]}\n");
  free(emb);

  bad_arguments(session, embedder);

  EXPECT_STATUS(trustformers_embedder_free(embedder), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_session_free(session), TRUSTFORMERS_OK);
  EXPECT_STATUS(trustformers_session_free(session), TRUSTFORMERS_INVALID_ARGUMENT);
  if (failures) fprintf(stderr, "%d checks failed\n", failures);
  return failures ? 1 : 0;
}
