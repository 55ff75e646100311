// The C++ RAII wrapper (include/trustformers.hpp): the same generation, tokenization and
// embedding as test_api.c through the classes, printed as JSON lines for tests/c_api.rs;
// failures as exceptions; handles moved, never double-freed.
//
// Usage: test_api_cpp CHAT_MODEL EMBED_MODEL PROMPT MAX_NEW_TOKENS
#include <cstdio>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "trustformers.hpp"

static int failures = 0;
#define CHECK(cond, what)                                                  \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::cerr << "FAIL " << __FILE__ << ":" << __LINE__ << ": " << what \
                << std::endl;                                              \
      failures++;                                                          \
    }                                                                      \
  } while (0)

static std::string json(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

int main(int argc, char **argv) {
  if (argc != 5) {
    std::cerr << "usage: " << argv[0] << " CHAT_MODEL EMBED_MODEL PROMPT MAX_NEW_TOKENS\n";
    return 2;
  }
  const std::string config = std::string("{\"max_new_tokens\": ") + argv[4] + "}";
  try {
    trustformers::Session session(argv[1]);
    std::string streamed;
    std::string text = session.generate(argv[3], config, false, [&](const std::string &piece) {
      streamed += piece;
      return true;
    });
    CHECK(text == streamed, "streamed pieces differ from the text");
    int pieces = 0;
    session.generate(argv[3], config, false, [&](const std::string &) { return ++pieces < 2; });
    CHECK(pieces == 2, "returning false did not stop after 2 pieces");
    std::cout << "{\"generate\": {\"text\": " << json(text) << "}}" << std::endl;

    trustformers::Tokenizer tok = session.tokenizer();
    trustformers::Tokenizer moved = std::move(tok);  // the moved-from owner frees nothing
    std::vector<uint32_t> ids = moved.encode(argv[3]);
    std::cout << "{\"encode\": [";
    for (size_t i = 0; i < ids.size(); i++) std::cout << (i ? "," : "") << ids[i];
    std::cout << "], \"decode\": " << json(moved.decode(ids, true)) << "}" << std::endl;

    trustformers::Embedder embedder(argv[2]);
    auto rows = embedder.embed({"the weather is sunny today", "john lives in london", "a"});
    CHECK(rows.size() == 3 && rows[0].size() == embedder.dimension(), "embedding shape");
    std::cout << "{\"embeddings\": [";
    for (size_t i = 0; i < rows.size(); i++) {
      std::cout << (i ? ",[" : "[");
      for (size_t j = 0; j < rows[i].size(); j++) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", rows[i][j]);
        std::cout << (j ? "," : "") << buf;
      }
      std::cout << "]";
    }
    std::cout << "]}" << std::endl;
  } catch (const trustformers::Error &e) {
    std::cerr << "FAIL: unexpected error " << e.status() << ": " << e.what() << std::endl;
    return 1;
  }
  try {
    trustformers::Session missing("/no/such/model.gguf");
    CHECK(false, "loading a missing model did not throw");
  } catch (const trustformers::Error &e) {
    CHECK(e.status() == TRUSTFORMERS_NOT_FOUND, "a missing model is not TRUSTFORMERS_NOT_FOUND");
    CHECK(std::string(e.what()).find("/no/such/model.gguf") != std::string::npos, "the message names the path");
  }
  if (failures) std::cerr << failures << " checks failed" << std::endl;
  return failures ? 1 : 0;
}
