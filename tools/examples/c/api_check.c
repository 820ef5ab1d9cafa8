/* Calls every function of tfq.h, on the success and the error paths, and frees everything
 * it made: built by tools/examples/check_c_api.sh with -Wall -Wextra -Werror -pedantic and
 * run under AddressSanitizer and UndefinedBehaviorSanitizer. Exits 1 at the first failed
 * check, naming it.
 *
 *   ./api_check MODEL "prompt text"
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfq.h"

static int checks = 0;

#define CHECK(condition)                                                                          \
    do {                                                                                          \
        checks++;                                                                                 \
        if (!(condition)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__,     \
                    #condition, tfq_last_error());                                                \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

/* Expects `call` to return `expected`, and a message for every failure. */
#define EXPECT_STATUS(call, expected)                                                             \
    do {                                                                                          \
        tfq_status status_ = (call);                                                              \
        checks++;                                                                                 \
        if (status_ != (expected)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", __FILE__,    \
                    __LINE__, #call, tfq_status_name(status_), tfq_status_name(expected),         \
                    tfq_last_error());                                                            \
            exit(1);                                                                              \
        }                                                                                         \
        CHECK(status_ == TFQ_OK || tfq_last_error()[0] != '\0');                                  \
    } while (0)

/* Appends each piece to a growing buffer; stops after `limit` tokens if set. */
typedef struct {
    char *text;
    size_t length;
    int tokens;
    int limit;
} collected;

static int collect(int32_t token, const char *text, size_t length, void *user_data) {
    collected *out = user_data;
    (void)token;
    char *grown = realloc(out->text, out->length + length + 1);
    if (grown == NULL) return 1;
    out->text = grown;
    memcpy(out->text + out->length, text, length);
    out->length += length;
    out->text[out->length] = '\0';
    out->tokens++;
    return out->limit > 0 && out->tokens >= out->limit;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *prompt = argv[2];
    size_t prompt_length = strlen(prompt);

    CHECK(strlen(tfq_version()) >= 5);
    CHECK(strcmp(tfq_last_error(), "") == 0);
    CHECK(strcmp(tfq_status_name(TFQ_OK), "TFQ_OK") == 0);
    CHECK(strcmp(tfq_status_name(TFQ_ERROR_INVALID_TOKEN), "TFQ_ERROR_INVALID_TOKEN") == 0);
    CHECK(strcmp(tfq_status_name((tfq_status)99), "TFQ_ERROR_UNKNOWN") == 0);

    /* Opening: the error paths, then the model twice (mapped, and verified into a copy). */
    tfq_model *model = NULL, *copy = NULL;
    EXPECT_STATUS(tfq_model_open(NULL, &model), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_model_open(path, NULL), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_model_open("/no/such/model.tfq", &model), TFQ_ERROR_CANNOT_OPEN);
    CHECK(model == NULL && strstr(tfq_last_error(), "cannot open") != NULL);
    EXPECT_STATUS(tfq_model_open(argv[0], &model), TFQ_ERROR_NOT_TFQ_FILE); /* this program */
    EXPECT_STATUS(tfq_model_open_flags(path, 4, &model), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_model_open(path, &model), TFQ_OK);
    EXPECT_STATUS(tfq_model_open_flags(path, TFQ_OPEN_VERIFY | TFQ_OPEN_COPY, &copy), TFQ_OK);
    CHECK(model != NULL && copy != NULL && model != copy);

    tfq_model_info info, info_copy;
    memset(&info, 0xff, sizeof info);
    EXPECT_STATUS(tfq_model_get_info(model, &info), TFQ_OK);
    EXPECT_STATUS(tfq_model_get_info(copy, &info_copy), TFQ_OK);
    EXPECT_STATUS(tfq_model_get_info(model, NULL), TFQ_ERROR_INVALID_ARGUMENT);
    CHECK(info.vocab_size > 0 && info.context_length > 0 && info.n_layers > 0 && info.n_heads > 0);
    CHECK(info.dim > 0 && info.ff_dim > 0 && (info.quantized == 0 || info.quantized == 1));
    CHECK(memcmp(&info, &info_copy, sizeof info) == 0);
    tfq_model_close(copy);

    /* Tokens: ask for the count, then tokenize into a buffer of that size; back to text. */
    size_t count = 0;
    EXPECT_STATUS(tfq_tokenize(model, prompt, prompt_length, NULL, 0, &count), TFQ_ERROR_BUFFER_TOO_SMALL);
    CHECK(count > 0 && count < (size_t)info.context_length);
    int32_t *tokens = malloc(count * sizeof *tokens);
    CHECK(tokens != NULL);
    EXPECT_STATUS(tfq_tokenize(model, prompt, prompt_length, tokens, count, &count), TFQ_OK);
    EXPECT_STATUS(tfq_tokenize(model, "\xff", 1, tokens, count, &count), TFQ_ERROR_INVALID_UTF8);
    EXPECT_STATUS(tfq_tokenize(model, NULL, 1, tokens, count, &count), TFQ_ERROR_INVALID_ARGUMENT);
    size_t length = 0;
    EXPECT_STATUS(tfq_detokenize(model, tokens, count, NULL, 0, &length), TFQ_ERROR_BUFFER_TOO_SMALL);
    CHECK(length == prompt_length);
    char *text = malloc(length + 1);
    CHECK(text != NULL);
    EXPECT_STATUS(tfq_detokenize(model, tokens, count, text, length, &length), TFQ_OK);
    CHECK(length == prompt_length && memcmp(text, prompt, length) == 0);
    int32_t outside = info.vocab_size;
    EXPECT_STATUS(tfq_detokenize(model, &outside, 1, text, length, &length), TFQ_ERROR_INVALID_TOKEN);

    /* A session: evaluate the prompt, then every way an evaluation is refused. */
    tfq_session *session = NULL;
    EXPECT_STATUS(tfq_session_new(model, -1, &session), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_session_new(model, 2, &session), TFQ_OK);
    float *logits = malloc((size_t)info.vocab_size * sizeof *logits);
    CHECK(logits != NULL);
    EXPECT_STATUS(tfq_session_eval(session, tokens, count, logits, (size_t)info.vocab_size), TFQ_OK);
    for (int32_t i = 0; i < info.vocab_size; i++) CHECK(isfinite(logits[i]));
    int32_t position = -1;
    EXPECT_STATUS(tfq_session_position(session, &position), TFQ_OK);
    CHECK(position == (int32_t)count);
    EXPECT_STATUS(tfq_session_eval(session, tokens, 0, logits, (size_t)info.vocab_size), TFQ_ERROR_NO_TOKENS);
    EXPECT_STATUS(tfq_session_eval(session, &outside, 1, logits, (size_t)info.vocab_size), TFQ_ERROR_INVALID_TOKEN);
    EXPECT_STATUS(tfq_session_eval(session, tokens, 1, logits, (size_t)info.vocab_size - 1), TFQ_ERROR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(tfq_session_eval(session, tokens, (size_t)info.context_length, logits, (size_t)info.vocab_size),
                  TFQ_ERROR_CONTEXT_FULL);
    EXPECT_STATUS(tfq_session_eval(session, NULL, 1, logits, (size_t)info.vocab_size), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_session_position(session, &position), TFQ_OK);
    CHECK(position == (int32_t)count);

    /* Generation: sampled twice with one seed (the same text), greedy without a callback,
     * stopped by the callback, and refused. */
    collected first = {NULL, 0, 0, 0}, second = {NULL, 0, 0, 0}, stopped = {NULL, 0, 0, 2};
    tfq_sampling sampling = {0.8f, 10, 0.95f, 7};
    int32_t generated = -1;
    EXPECT_STATUS(tfq_session_reset(session), TFQ_OK);
    EXPECT_STATUS(tfq_generate(session, tokens, count, 12, &sampling, collect, &first, &generated), TFQ_OK);
    CHECK(generated >= 1 && generated <= 12 && first.tokens >= generated); /* a stop token may carry text, uncounted */
    EXPECT_STATUS(tfq_session_reset(session), TFQ_OK);
    EXPECT_STATUS(tfq_generate(session, tokens, count, 12, &sampling, collect, &second, &generated), TFQ_OK);
    CHECK(second.length == first.length && memcmp(first.text, second.text, first.length) == 0);
    EXPECT_STATUS(tfq_session_reset(session), TFQ_OK);
    EXPECT_STATUS(tfq_generate(session, tokens, count, 5, NULL, NULL, NULL, &generated), TFQ_OK);
    CHECK(generated >= 1 && generated <= 5);
    EXPECT_STATUS(tfq_session_reset(session), TFQ_OK);
    EXPECT_STATUS(tfq_generate(session, tokens, count, 12, NULL, collect, &stopped, &generated), TFQ_OK);
    CHECK(stopped.tokens == 2 && generated == 2);
    EXPECT_STATUS(tfq_generate(session, tokens, 0, 5, NULL, NULL, NULL, &generated), TFQ_ERROR_NO_TOKENS);
    CHECK(generated == 0);
    tfq_sampling bad = {-1.0f, 0, 1.0f, 0};
    EXPECT_STATUS(tfq_generate(session, tokens, count, 5, &bad, NULL, NULL, NULL), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_generate(session, tokens, count, -1, NULL, NULL, NULL, NULL), TFQ_ERROR_INVALID_ARGUMENT);

    /* The session outlives its model's handle; closed handles are errors, NULL is ignored. */
    tfq_model_close(model);
    EXPECT_STATUS(tfq_session_reset(session), TFQ_OK);
    EXPECT_STATUS(tfq_session_eval(session, tokens, count, logits, (size_t)info.vocab_size), TFQ_OK);
    tfq_session *orphan = NULL;
    EXPECT_STATUS(tfq_session_new(model, 1, &orphan), TFQ_ERROR_INVALID_ARGUMENT);
    tfq_session_free(session);
    EXPECT_STATUS(tfq_session_reset(session), TFQ_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(tfq_session_position(session, &position), TFQ_ERROR_INVALID_ARGUMENT);
    tfq_session_free(session); /* twice: ignored */
    tfq_model_close(model);
    tfq_model_close(NULL);
    tfq_session_free(NULL);

    free(first.text);
    free(second.text);
    free(stopped.text);
    free(logits);
    free(text);
    free(tokens);
    printf("c api check: %d checks passed\n", checks);
    return 0;
}
