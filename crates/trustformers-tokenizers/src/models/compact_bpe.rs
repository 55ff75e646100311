//! A BPE model whose merges are implied by the vocabulary, kept compact: the token strings in
//! one buffer, an open-addressing table from string to id, and a merge order computed from
//! the vocabulary at each step (as SentencePiece merges by score) instead of a table of
//! every merge. Gemma 3's 262k-token vocabulary implies 515k merges; `tokenizers`' `BPE`
//! holds them and the vocabulary twice in hash maps (56 MiB of heap, 0.8-1.3 s to build here),
//! this model 10.5 MiB and 0.05 s (`examples/gguf_tokenizer_load.rs`).
//!
//! It reproduces, token for token, the `tokenizers` BPE that `formats::generate_merges` and
//! `BPE::builder()` build from the same vocabulary (`tests/compact_bpe.rs` compares the two
//! on the tokenizer corpus for every GGUF tokenizer the project reads; the `compact_bpe`
//! fuzz target on random text): the same initial symbols (byte fallback, fused unknowns),
//! the same merge priority (lowest rank first, then leftmost), the same expiry rule.

use ahash::AHashMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};
use tokenizers::models::bpe::BPE;
use tokenizers::Token;
use trustformers_core::{Error, Result};

/// The largest vocabulary accepted (ids must fit the tokenizer's `MAX_TOKEN_ID`).
const MAX_TOKENS: usize = crate::tokenizer::MAX_TOKEN_ID as usize;

/// Words cached with their pieces, and the longest cached, as `tokenizers`' BPE caches.
const CACHE_WORDS: usize = 10_000;
const CACHE_MAX_WORD_BYTES: usize = 256;

/// Which merge comes first, as the merge list `formats::generate_merges` would write it.
#[derive(Debug, Clone, Copy)]
pub enum MergeOrder<'a> {
    /// SentencePiece vocabularies: the merged token's score, higher first (`score` lists each
    /// token's score; for a repeated token the last one counts, its first position breaks
    /// ties), then the longer left part, then the longer right part.
    Scores(&'a [f64]),
    /// Byte-level vocabularies without merges: the merged token's id, then the shorter left
    /// part, then the shorter right part.
    Ids,
    /// An explicit merge list, first listed first.
    List(&'a [(&'a str, &'a str)]),
}

/// Words already split: `word -> (id, bytes)` pieces.
type WordCache = AHashMap<Box<str>, Box<[(u32, usize)]>>;

/// A pair's place in the merge order; lower merges first.
type Rank = (u32, u32, u32, u32);

#[derive(Debug)]
enum Ranks {
    /// Per token id (meaningful for the id a string resolves to): its score's place among
    /// the distinct scores (higher score, lower place) and the string's first position.
    Scores {
        place: Vec<u32>,
        first: Vec<u32>,
    },
    Ids,
    /// `(left id, right id) -> (rank, merged id)`.
    List(AHashMap<(u32, u32), (u32, u32)>),
}

#[derive(Debug)]
struct Vocabulary {
    /// Every token string, concatenated in id order.
    text: String,
    /// `ends[i]`: where token `i` ends in `text` (it starts where token `i - 1` ends).
    ends: Vec<u32>,
    /// Open addressing, linear probing: `id + 1` of each distinct string's last id, 0 empty.
    slots: Vec<u32>,
    /// Ids whose string appears again later (they have no string -> id entry), sorted.
    shadowed: Vec<u32>,
    hasher: ahash::RandomState,
}

impl Vocabulary {
    fn new<'a>(tokens: impl ExactSizeIterator<Item = &'a str>) -> Result<Self> {
        let n = tokens.len();
        if n > MAX_TOKENS {
            return Err(Error::Tokenizer(format!(
                "a vocabulary of {n} tokens is larger than the {MAX_TOKENS} allowed"
            )));
        }
        let mut text = String::new();
        let mut ends = Vec::with_capacity(n);
        for t in tokens {
            text.push_str(t);
            let end = u32::try_from(text.len()).map_err(|_| {
                Error::Tokenizer("the vocabulary's token strings exceed 4 GiB".into())
            })?;
            ends.push(end);
        }
        let mut vocab = Self {
            text,
            ends,
            slots: vec![0; (2 * n).next_power_of_two().max(16)],
            shadowed: Vec::new(),
            // Fixed seeds: the table's layout does not depend on the process.
            hasher: ahash::RandomState::with_seeds(0x7472, 0x7573, 0x7466, 0x6f72),
        };
        for id in 0..n as u32 {
            let slot = vocab.slot(vocab.token(id));
            match vocab.slots[slot] {
                0 => {}
                previous => vocab.shadowed.push(previous - 1),
            }
            vocab.slots[slot] = id + 1;
        }
        vocab.shadowed.sort_unstable();
        Ok(vocab)
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The string of `id`, which must be below `len()`.
    fn token(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    /// The slot holding `s`, or the empty slot where it would go.
    fn slot(&self, s: &str) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.hasher.hash_one(s) as usize & mask;
        loop {
            match self.slots[at] {
                0 => return at,
                id if self.token(id - 1) == s => return at,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The id of `s` (the last id, when the string repeats).
    fn id(&self, s: &str) -> Option<u32> {
        self.slots[self.slot(s)].checked_sub(1)
    }

    /// Whether `id` is the id its string resolves to.
    fn resolves(&self, id: u32) -> bool {
        (id as usize) < self.len() && self.shadowed.binary_search(&id).is_err()
    }
}

#[derive(Debug)]
struct Model {
    vocab: Vocabulary,
    cache: RwLock<WordCache>,
    ranks: Ranks,
    /// With byte fallback, the id of each byte's `<0xXX>` token (looked up once).
    byte_ids: Option<Box<[Option<u32>; 256]>>,
    fuse_unk: bool,
    unk_token: Option<String>,
}

/// The compact BPE model (cheap to clone: the tables are shared).
#[derive(Debug, Clone)]
pub struct CompactBpe(Arc<Model>);

/// Options of a [`CompactBpe`], as `tokenizers`' `BpeBuilder` names them.
#[derive(Debug, Clone, Default)]
pub struct CompactBpeOptions {
    /// Unknown characters become their `<0xXX>` byte tokens when all exist.
    pub byte_fallback: bool,
    /// Consecutive unknown characters become one unknown token.
    pub fuse_unk: bool,
    /// The token for unknown characters (none: they are dropped).
    pub unk_token: Option<String>,
}

impl CompactBpe {
    /// A model over `tokens` (id order) merging in `order`.
    pub fn new(tokens: &[&str], order: MergeOrder, options: CompactBpeOptions) -> Result<Self> {
        let vocab = Vocabulary::new(tokens.iter().copied())?;
        let ranks = match order {
            MergeOrder::Scores(scores) => score_ranks(&vocab, scores)?,
            MergeOrder::Ids => Ranks::Ids,
            MergeOrder::List(merges) => list_ranks(&vocab, merges)?,
        };
        Ok(Self(Arc::new(Model {
            cache: RwLock::default(),
            ranks,
            byte_ids: options
                .byte_fallback
                .then(|| Box::new(std::array::from_fn(|b| vocab.id(&format!("<{b:#04X}>"))))),
            vocab,
            fuse_unk: options.fuse_unk,
            unk_token: options.unk_token,
        })))
    }

    /// Number of distinct token strings (`tokenizers`' vocabulary size).
    pub fn vocab_size(&self) -> usize {
        self.0.vocab.len() - self.0.vocab.shadowed.len()
    }

    /// The id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.0.vocab.id(token)
    }

    /// The string of an id (none for an id whose string appears again later, as in
    /// `tokenizers`, whose reverse vocabulary is built from the forward one).
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        let v = &self.0.vocab;
        v.resolves(id).then(|| v.token(id))
    }

    /// `{token: id}` for every distinct string.
    pub fn vocab(&self) -> HashMap<String, u32> {
        let v = &self.0.vocab;
        (0..v.len() as u32)
            .filter(|&id| v.resolves(id))
            .map(|id| (v.token(id).to_string(), id))
            .collect()
    }

    /// The merge of `left` and `right`: its rank and the merged token's id.
    fn merge(&self, left: u32, right: u32, scratch: &mut String) -> Option<(Rank, u32)> {
        let m = &*self.0;
        let (place, first) = match &m.ranks {
            Ranks::List(map) => {
                return map
                    .get(&(left, right))
                    .map(|&(rank, id)| ((rank, 0, 0, 0), id));
            }
            Ranks::Scores { place, first } => (Some(place.as_slice()), first.as_slice()),
            Ranks::Ids => (None, &[][..]),
        };
        let (l, r) = (m.vocab.token(left), m.vocab.token(right));
        scratch.clear();
        scratch.push_str(l);
        scratch.push_str(r);
        let merged = m.vocab.id(scratch)?;
        let (l_chars, r_chars) = (chars(l), chars(r));
        let rank = match place {
            Some(place) => (
                place[merged as usize],
                u32::MAX - l_chars,
                u32::MAX - r_chars,
                first[merged as usize],
            ),
            None => (merged, l_chars, r_chars, 0),
        };
        Some((rank, merged))
    }

    /// The symbols of `word` before merging, as `BPE::merge_word` makes them: `(id, bytes)`.
    fn symbols(&self, word: &str) -> Result<Vec<(u32, usize)>> {
        let m = &*self.0;
        let mut symbols = Vec::with_capacity(word.len());
        let mut unk: Option<(u32, usize)> = None;
        let unk_id = || -> Result<u32> {
            let token = m.unk_token.as_deref().unwrap_or_default();
            m.vocab.id(token).ok_or_else(|| {
                Error::Tokenizer(format!("unk token `{token}` is not in the vocabulary"))
            })
        };
        for (at, c) in word.char_indices() {
            let s = &word[at..at + c.len_utf8()];
            if let Some(id) = m.vocab.id(s) {
                if let Some(u) = unk.take() {
                    symbols.push(u);
                }
                symbols.push((id, s.len()));
                continue;
            }
            if let Some(byte_ids) = &m.byte_ids {
                let bytes: Option<Vec<u32>> = s.bytes().map(|b| byte_ids[b as usize]).collect();
                if let Some(bytes) = bytes {
                    symbols.extend(bytes.into_iter().map(|id| (id, 1)));
                    continue;
                }
            }
            if m.unk_token.is_some() {
                unk = match unk {
                    Some((id, len)) if m.fuse_unk => Some((id, len + s.len())),
                    Some(previous) => {
                        symbols.push(previous);
                        Some((unk_id()?, s.len()))
                    }
                    None => Some((unk_id()?, s.len())),
                };
            }
        }
        symbols.extend(unk);
        Ok(symbols)
    }

    /// `word` split into tokens, offsets in bytes of `word`.
    pub fn tokenize(&self, word: &str) -> Result<Vec<Token>> {
        if word.is_empty() {
            return Ok(Vec::new());
        }
        let cacheable = word.len() < CACHE_MAX_WORD_BYTES;
        if cacheable {
            if let Some(hit) = self
                .0
                .cache
                .read()
                .ok()
                .and_then(|c| c.get(word).map(|pieces| self.tokens(pieces)))
            {
                return Ok(hit);
            }
        }
        let pieces = self.merge_word(word)?;
        let tokens = self.tokens(&pieces);
        if cacheable {
            if let Ok(mut cache) = self.0.cache.write() {
                if cache.len() < CACHE_WORDS {
                    cache.insert(word.into(), pieces.into());
                }
            }
        }
        Ok(tokens)
    }

    /// Tokens of `(id, bytes)` pieces, offsets counted from 0.
    fn tokens(&self, pieces: &[(u32, usize)]) -> Vec<Token> {
        let vocab = &self.0.vocab;
        let mut start = 0;
        pieces
            .iter()
            .map(|&(id, len)| {
                let token = Token::new(id, vocab.token(id).to_string(), (start, start + len));
                start += len;
                token
            })
            .collect()
    }

    /// `word`'s pieces after every merge: `(id, bytes)`.
    fn merge_word(&self, word: &str) -> Result<Vec<(u32, usize)>> {
        let ids = self.symbols(word)?;
        let mut symbols: Vec<Symbol> = ids
            .iter()
            .enumerate()
            .map(|(i, &(id, len))| Symbol {
                id,
                len,
                prev: i.checked_sub(1),
                next: (i + 1 < ids.len()).then_some(i + 1),
            })
            .collect();
        self.merge_all(&mut symbols);
        Ok(symbols
            .into_iter()
            .filter(|s| s.len > 0)
            .map(|s| (s.id, s.len))
            .collect())
    }

    /// `Word::merge_all` of `tokenizers`: repeatedly merge the best-ranked adjacent pair
    /// (leftmost among equals), skipping queue entries that merges made stale.
    fn merge_all(&self, symbols: &mut [Symbol]) {
        let mut scratch = String::new();
        let mut queue = BinaryHeap::with_capacity(symbols.len());
        for pos in 0..symbols.len().saturating_sub(1) {
            if let Some((rank, id)) = self.merge(symbols[pos].id, symbols[pos + 1].id, &mut scratch)
            {
                queue.push(Reverse((rank, pos, id)));
            }
        }
        while let Some(Reverse((_, pos, new_id))) = queue.pop() {
            let (Some(next), true) = (symbols[pos].next, symbols[pos].len > 0) else {
                continue;
            };
            let right = symbols[next];
            let current = self.merge(symbols[pos].id, right.id, &mut scratch);
            if current.is_none_or(|(_, id)| id != new_id) {
                continue;
            }
            symbols[pos].id = new_id;
            symbols[pos].len += right.len;
            symbols[pos].next = right.next;
            symbols[next].len = 0;
            if let Some(after) = right.next {
                symbols[after].prev = Some(pos);
            }
            if let Some(prev) = symbols[pos].prev {
                if let Some((rank, id)) = self.merge(symbols[prev].id, new_id, &mut scratch) {
                    queue.push(Reverse((rank, prev, id)));
                }
            }
            if let Some(after) = symbols[pos].next {
                if let Some((rank, id)) = self.merge(new_id, symbols[after].id, &mut scratch) {
                    queue.push(Reverse((rank, pos, id)));
                }
            }
        }
    }

    /// Every merge in rank order, as a merge list.
    pub fn merges(&self) -> Vec<(String, String)> {
        let m = &*self.0;
        let v = &m.vocab;
        let mut ranked: Vec<(Rank, &str, &str)> = match &m.ranks {
            Ranks::List(map) => map
                .iter()
                .map(|(&(l, r), &(rank, _))| ((rank, 0, 0, 0), v.token(l), v.token(r)))
                .collect(),
            _ => {
                let mut scratch = String::new();
                let mut out = Vec::new();
                for id in (0..v.len() as u32).filter(|&id| v.resolves(id)) {
                    let token = v.token(id);
                    for (at, _) in token.char_indices().skip(1) {
                        let (l, r) = token.split_at(at);
                        if let (Some(li), Some(ri)) = (v.id(l), v.id(r)) {
                            if let Some((rank, _)) = self.merge(li, ri, &mut scratch) {
                                out.push((rank, l, r));
                            }
                        }
                    }
                }
                out
            }
        };
        ranked.sort_unstable_by_key(|(rank, ..)| *rank);
        ranked
            .into_iter()
            .map(|(_, l, r)| (l.to_string(), r.to_string()))
            .collect()
    }

    /// The same model as `tokenizers`' BPE (vocabulary and every merge in order).
    pub fn to_bpe(&self) -> Result<BPE> {
        let mut builder = BPE::builder()
            .vocab_and_merges(
                self.vocab().into_iter().collect::<AHashMap<_, _>>(),
                self.merges(),
            )
            .byte_fallback(self.0.byte_ids.is_some())
            .fuse_unk(self.0.fuse_unk);
        if let Some(unk) = &self.0.unk_token {
            builder = builder.unk_token(unk.clone());
        }
        builder.build().map_err(crate::tokenizer::tk_err)
    }
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

fn chars(s: &str) -> u32 {
    u32::try_from(s.chars().count()).unwrap_or(u32::MAX)
}

/// Score places and first positions, by each string's resolving id.
fn score_ranks(vocab: &Vocabulary, scores: &[f64]) -> Result<Ranks> {
    let n = vocab.len();
    if scores.len() != n {
        return Err(Error::Tokenizer(format!(
            "{} scores for {n} tokens",
            scores.len()
        )));
    }
    let mut first = vec![0u32; n];
    let mut seen = vec![false; n];
    for id in 0..n as u32 {
        let resolved = vocab.id(vocab.token(id)).unwrap_or(id) as usize;
        if !seen[resolved] {
            seen[resolved] = true;
            first[resolved] = id;
        }
    }
    // A repeated string takes its last score, which sits at the id it resolves to.
    // `+ 0.0` makes -0.0 equal 0.0, as the merge list's sort does.
    let mut by_score: Vec<u32> = (0..n as u32).filter(|&id| vocab.resolves(id)).collect();
    by_score.sort_unstable_by(|&a, &b| {
        (scores[b as usize] + 0.0).total_cmp(&(scores[a as usize] + 0.0))
    });
    let mut place = vec![0u32; n];
    let mut current = 0u32;
    for (i, &id) in by_score.iter().enumerate() {
        let score = scores[id as usize] + 0.0;
        if i > 0
            && score
                .total_cmp(&(scores[by_score[i - 1] as usize] + 0.0))
                .is_ne()
        {
            current += 1;
        }
        place[id as usize] = current;
    }
    Ok(Ranks::Scores { place, first })
}

/// An explicit merge list as `BpeBuilder::build` reads it (a repeated pair keeps its last
/// rank).
fn list_ranks(vocab: &Vocabulary, merges: &[(&str, &str)]) -> Result<Ranks> {
    let mut map = AHashMap::with_capacity(merges.len());
    let mut merged = String::new();
    for (rank, &(l, r)) in merges.iter().enumerate() {
        let missing =
            |t: &str| Error::Tokenizer(format!("merge token `{t}` is not in the vocabulary"));
        let li = vocab.id(l).ok_or_else(|| missing(l))?;
        let ri = vocab.id(r).ok_or_else(|| missing(r))?;
        merged.clear();
        merged.push_str(l);
        merged.push_str(r);
        let id = vocab.id(&merged).ok_or_else(|| missing(&merged))?;
        map.insert((li, ri), (rank as u32, id));
    }
    Ok(Ranks::List(map))
}
