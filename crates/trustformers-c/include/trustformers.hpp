// TrustformeRS C++ wrapper: RAII owners for the C API's handles (include/trustformers.h).
// Each class owns one handle, frees it in its destructor, and is movable, not copyable;
// a failed call throws trustformers::Error with the status and the library's message.
// Header-only, C++17.
#ifndef TRUSTFORMERS_HPP
#define TRUSTFORMERS_HPP

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "trustformers.h"

namespace trustformers {

// A failed call: its status and message.
class Error : public std::runtime_error {
 public:
  Error(trustformers_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  trustformers_status status() const noexcept { return status_; }

 private:
  trustformers_status status_;
};

namespace detail {
inline void check(trustformers_status status) {
  if (status != TRUSTFORMERS_OK) throw Error(status, trustformers_last_error());
}

// Takes ownership of a string the library returned.
inline std::string take(char *text) {
  std::string out = text ? text : "";
  trustformers_string_free(text);
  return out;
}

// Owns one handle of type T, freed by Free.
template <typename T, trustformers_status (*Free)(T *)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(T *raw) : raw_(raw) {}
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  Handle(Handle &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Handle &operator=(Handle &&other) noexcept {
    if (this != &other) {
      reset();
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  ~Handle() { reset(); }
  T *get() const noexcept { return raw_; }

 private:
  void reset() noexcept {
    if (raw_) Free(raw_);
    raw_ = nullptr;
  }
  T *raw_ = nullptr;
};
}  // namespace detail

// A tokenizer.
class Tokenizer {
 public:
  explicit Tokenizer(const std::string &model) {
    trustformers_tokenizer *raw = nullptr;
    detail::check(trustformers_tokenizer_load(model.c_str(), &raw));
    handle_ = Handle(raw);
  }

  std::vector<uint32_t> encode(const std::string &text, bool add_special_tokens = true) const {
    std::vector<uint32_t> ids(text.size() + 16);
    size_t n = 0;
    trustformers_status st =
        trustformers_tokenizer_encode(handle_.get(), text.c_str(), add_special_tokens, ids.data(), ids.size(), &n);
    if (st == TRUSTFORMERS_BUFFER_TOO_SMALL) {
      ids.resize(n);
      st = trustformers_tokenizer_encode(handle_.get(), text.c_str(), add_special_tokens, ids.data(), ids.size(), &n);
    }
    detail::check(st);
    ids.resize(n);
    return ids;
  }

  std::string decode(const std::vector<uint32_t> &ids, bool skip_special_tokens = false) const {
    char *text = nullptr;
    detail::check(trustformers_tokenizer_decode(handle_.get(), ids.data(), ids.size(), skip_special_tokens, &text));
    return detail::take(text);
  }

  // `messages_json`: a JSON list of {"role", "content"} objects.
  std::string apply_chat_template(const std::string &messages_json, bool add_generation_prompt = true) const {
    char *text = nullptr;
    detail::check(trustformers_tokenizer_apply_chat_template(handle_.get(), messages_json.c_str(),
                                                             add_generation_prompt, &text));
    return detail::take(text);
  }

 private:
  friend class Session;
  using Handle = detail::Handle<trustformers_tokenizer, trustformers_tokenizer_free>;
  explicit Tokenizer(trustformers_tokenizer *raw) : handle_(raw) {}
  Handle handle_;
};

// A causal language model with its tokenizer.
class Session {
 public:
  // `model`: a directory, a .gguf file, a Hub repo id or a known name; empty for the
  // default model. `dtype`: "f32", "f16", "bf16" or empty for the checkpoint's way.
  explicit Session(const std::string &model, const std::string &dtype = "") {
    trustformers_load_options opts;
    detail::check(trustformers_load_options_default(&opts));
    if (!dtype.empty()) opts.dtype = dtype.c_str();
    trustformers_session *raw = nullptr;
    detail::check(trustformers_session_load(model.empty() ? nullptr : model.c_str(), &opts, &raw));
    handle_ = Handle(raw);
  }

  // Generates a reply (through the chat template unless `raw`); `on_text` sees each piece
  // and returns false to stop. `config_json`: generation_config.json overrides.
  std::string generate(const std::string &prompt, const std::string &config_json = "", bool raw = false,
                       const std::function<bool(const std::string &)> &on_text = nullptr) const {
    trustformers_generate_options opts;
    detail::check(trustformers_generate_options_default(&opts));
    if (!config_json.empty()) opts.config_json = config_json.c_str();
    opts.raw = raw;
    char *text = nullptr;
    trustformers_text_callback cb = on_text ? &Session::trampoline : nullptr;
    void *user = on_text ? const_cast<std::function<bool(const std::string &)> *>(&on_text) : nullptr;
    detail::check(trustformers_session_generate(handle_.get(), prompt.c_str(), &opts, cb, user, &text));
    return detail::take(text);
  }

  Tokenizer tokenizer() const {
    trustformers_tokenizer *raw = nullptr;
    detail::check(trustformers_session_tokenizer(handle_.get(), &raw));
    return Tokenizer(raw);
  }

  size_t context_size() const {
    size_t n = 0;
    detail::check(trustformers_session_context_size(handle_.get(), &n));
    return n;
  }

 private:
  static int32_t trampoline(const char *text, size_t len, void *user_data) {
    auto *fn = static_cast<std::function<bool(const std::string &)> *>(user_data);
    try {
      return (*fn)(std::string(text, len)) ? 0 : 1;
    } catch (...) {
      return 1;  // an exception must not cross into the library: stop instead
    }
  }
  using Handle = detail::Handle<trustformers_session, trustformers_session_free>;
  Handle handle_;
};

// A sentence-embedding model.
class Embedder {
 public:
  explicit Embedder(const std::string &model) {
    trustformers_embedder *raw = nullptr;
    detail::check(trustformers_embedder_load(model.c_str(), nullptr, &raw));
    handle_ = Handle(raw);
    detail::check(trustformers_embedder_dimension(handle_.get(), &dim_));
  }

  size_t dimension() const noexcept { return dim_; }

  // One row of dimension() floats per text.
  std::vector<std::vector<float>> embed(const std::vector<std::string> &texts, bool normalize = false) const {
    std::vector<const char *> ptrs;
    for (const auto &t : texts) ptrs.push_back(t.c_str());
    std::vector<float> flat(texts.size() * dim_);
    size_t n = 0;
    detail::check(trustformers_embedder_embed(handle_.get(), ptrs.data(), ptrs.size(), normalize, flat.data(),
                                              flat.size(), &n));
    std::vector<std::vector<float>> rows;
    for (size_t i = 0; i < texts.size(); i++)
      rows.emplace_back(flat.begin() + i * dim_, flat.begin() + (i + 1) * dim_);
    return rows;
  }

 private:
  using Handle = detail::Handle<trustformers_embedder, trustformers_embedder_free>;
  Handle handle_;
  size_t dim_ = 0;
};

}  // namespace trustformers

#endif  // TRUSTFORMERS_HPP
