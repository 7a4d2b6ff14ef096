#include "identity/identity_graph.h"

#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/coding.h"

namespace shoal {

std::string_view IdKindName(IdKind kind) {
  switch (kind) {
    case IdKind::kCustomerId: return "customer_id";
    case IdKind::kEmail: return "email";
    case IdKind::kAnonymousId: return "anonymous_id";
  }
  return "?";
}

IdentityGraph::IdentityGraph(IdentityOptions options) : options_(options) {}

uint64_t IdentityGraph::KeyHash(IdKind kind, std::string_view value) {
  return XXH3_64bits_withSeed(value.data(), value.size(), static_cast<uint64_t>(kind));
}

uint32_t IdentityGraph::Lookup(IdKind kind, std::string_view value) const {
  if (index_slots_.empty()) return kAbsent;
  const uint64_t hash = KeyHash(kind, value);
  const uint64_t fingerprint = Fingerprint(hash);
  const size_t mask = index_slots_.size() - 1;
  const uint32_t idx_mask = static_cast<uint32_t>((uint64_t{1} << index_bits_) - 1);
  for (size_t i = HomeSlot(hash);; i = (i + 1) & mask) {
    const uint32_t word = index_slots_[i];
    if (word == 0) return kAbsent;
    if ((uint64_t{word} >> index_bits_) == fingerprint) {
      const uint32_t idx = (word & idx_mask) - 1;
      const Identifier& id = identifiers_[idx];
      if (id.kind == kind && Value(id) == value) return idx;
    }
  }
}

void IdentityGraph::IndexInsert(uint64_t hash, uint32_t identifier_idx) {
  uint32_t bits = std::max<uint32_t>(index_bits_, 4);
  while ((index_size_ + 1) * 2 > (size_t{1} << bits) || uint64_t{identifier_idx} + 1 >= (uint64_t{1} << bits)) {
    ++bits;
  }
  if (bits > 32) throw std::length_error("identity graph: more than 2^31 identifiers");
  if (bits != index_bits_) IndexRebuild(bits);
  const size_t mask = index_slots_.size() - 1;
  size_t i = HomeSlot(hash);
  while (index_slots_[i] != 0) i = (i + 1) & mask;
  index_slots_[i] = SlotWord(hash, identifier_idx);
  ++index_size_;
}

void IdentityGraph::IndexErase(uint32_t identifier_idx) {
  if (index_slots_.empty()) return;
  const size_t mask = index_slots_.size() - 1;
  const uint32_t idx_mask = static_cast<uint32_t>((uint64_t{1} << index_bits_) - 1);
  size_t i = HomeSlot(KeyHashOf(identifier_idx));
  for (;; i = (i + 1) & mask) {
    if (index_slots_[i] == 0) return;
    if ((index_slots_[i] & idx_mask) == identifier_idx + 1) break;
  }
  // Backward-shift deletion: an entry after the hole moves into it when its home slot is
  // cyclically outside (hole, its position], so every probe sequence stays unbroken.
  size_t j = i;
  for (;;) {
    index_slots_[i] = 0;
    for (;;) {
      j = (j + 1) & mask;
      if (index_slots_[j] == 0) {
        --index_size_;
        return;
      }
      const size_t home = HomeSlot(KeyHashOf((index_slots_[j] & idx_mask) - 1));
      if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) break;
    }
    index_slots_[i] = index_slots_[j];
    i = j;
  }
}

void IdentityGraph::IndexRebuild(uint32_t bits) {
  const uint32_t old_mask = static_cast<uint32_t>((uint64_t{1} << index_bits_) - 1);
  std::vector<uint32_t> old(size_t{1} << bits, 0);
  old.swap(index_slots_);
  index_bits_ = bits;
  const size_t mask = index_slots_.size() - 1;
  for (uint32_t word : old) {
    if (word == 0) continue;
    const uint32_t idx = (word & old_mask) - 1;
    const uint64_t hash = KeyHashOf(idx);
    size_t i = HomeSlot(hash);
    while (index_slots_[i] != 0) i = (i + 1) & mask;
    index_slots_[i] = SlotWord(hash, idx);
  }
}

uint32_t IdentityGraph::AddIdentifier(IdKind kind, std::string_view value, uint32_t profile) {
  if (arena_.size() + value.size() >= (uint64_t{1} << 40)) {
    throw std::length_error("identity graph: more than 1 TiB of identifier text");
  }
  Identifier id;
  id.profile = profile;
  id.offset_low = static_cast<uint32_t>(arena_.size());
  id.offset_high = static_cast<uint8_t>(arena_.size() >> 32);
  id.length = static_cast<uint32_t>(value.size());
  id.kind = kind;
  arena_.append(value);
  auto idx = static_cast<uint32_t>(identifiers_.size());
  identifiers_.push_back(id);
  IndexInsert(KeyHash(kind, value), idx);
  Profile& p = profiles_[profile];
  if (p.last == kNoIdentifier) p.first = idx;
  else identifiers_[p.last].next = idx;
  p.last = idx;
  ++p.count;
  if (kind == IdKind::kCustomerId) profiles_[profile].customer_ids++;
  return idx;
}

uint32_t IdentityGraph::NewProfile() {
  profiles_.emplace_back();
  ++alive_count_;
  ++stats_.profiles_created;
  return static_cast<uint32_t>(profiles_.size() - 1);
}

bool IdentityGraph::CanMerge(uint32_t a, uint32_t b) const {
  const Profile& pa = profiles_[a];
  const Profile& pb = profiles_[b];
  return pa.customer_ids + pb.customer_ids <= options_.max_customer_ids_per_profile &&
         pa.count + pb.count <= options_.max_identifiers_per_profile;
}

void IdentityGraph::Merge(uint32_t survivor, uint32_t absorbed) {
  Profile& into = profiles_[survivor];
  Profile& from = profiles_[absorbed];
  ForEachIdentifier(from, [&](uint32_t idx) { identifiers_[idx].profile = survivor; });
  if (from.first != kNoIdentifier) {
    if (into.last == kNoIdentifier) into.first = from.first;
    else identifiers_[into.last].next = from.first;
    into.last = from.last;
  }
  into.count += from.count;
  into.customer_ids = static_cast<uint16_t>(into.customer_ids + from.customer_ids);
  from.first = from.last = kNoIdentifier;
  from.count = 0;
  from.customer_ids = 0;
  from.alive = false;
  --alive_count_;
  ++stats_.merges;
}

void IdentityGraph::Refuse(uint32_t identifier_idx) {
  Identifier& id = identifiers_[identifier_idx];
  ++stats_.refused_merges;
  if (id.kind == IdKind::kCustomerId) return;  // customer ids are never marked shared
  if (id.refusals < 255) ++id.refusals;
  if (!id.shared && id.refusals >= options_.shared_identifier_threshold) {
    id.shared = true;
    ++stats_.shared_identifiers;
  }
}

uint32_t IdentityGraph::Resolve(const Event& e, std::vector<MergeRecord>* merges) {
  struct Candidate { IdKind kind; std::string_view value; uint32_t idx; };
  Candidate cands[3];
  int n = 0;
  if (!e.customer_id.empty()) cands[n++] = {IdKind::kCustomerId, e.customer_id, 0};
  if (!e.email.empty()) cands[n++] = {IdKind::kEmail, e.email, 0};
  if (!e.anonymous_id.empty()) cands[n++] = {IdKind::kAnonymousId, e.anonymous_id, 0};
  if (n == 0) return kNoProfile;

  uint32_t target = kNoProfile;
  uint32_t shared_fallback = kNoProfile;
  for (int c = 0; c < n; ++c) {
    cands[c].idx = Lookup(cands[c].kind, cands[c].value);
    if (cands[c].idx == kAbsent) continue;
    const Identifier& id = identifiers_[cands[c].idx];
    if (id.shared) {
      if (shared_fallback == kNoProfile) shared_fallback = id.profile;
      continue;
    }
    if (target == kNoProfile) target = id.profile;
  }
  // An unknown customer id whose other identifiers point at a profile that already holds its
  // quota of customer ids is a different person: it starts its own profile.
  if (target != kNoProfile && n > 0 && cands[0].kind == IdKind::kCustomerId &&
      cands[0].idx == kAbsent &&
      profiles_[target].customer_ids >= options_.max_customer_ids_per_profile) {
    target = NewProfile();
  }
  if (target == kNoProfile) {
    // Only shared identifiers known: attribute to their holder unless the event brings a new
    // identifier of its own, which then starts a profile.
    bool has_new = false;
    for (int c = 0; c < n; ++c) has_new |= cands[c].idx == kAbsent;
    target = (has_new || shared_fallback == kNoProfile) ? NewProfile() : shared_fallback;
  }
  for (int c = 0; c < n; ++c) {
    if (cands[c].idx == kAbsent) {
      Profile& p = profiles_[target];
      bool cid_full = cands[c].kind == IdKind::kCustomerId &&
                      p.customer_ids >= options_.max_customer_ids_per_profile;
      if (p.count >= options_.max_identifiers_per_profile || cid_full) {
        ++stats_.capped_identifiers;
        continue;
      }
      cands[c].idx = AddIdentifier(cands[c].kind, cands[c].value, target);
      continue;
    }
    Identifier& id = identifiers_[cands[c].idx];
    if (id.shared || id.profile == target) continue;
    uint32_t other = id.profile;
    if (!CanMerge(target, other)) {
      Refuse(cands[c].idx);
      continue;
    }
    // The survivor is the profile with a customer id, else the older one: deterministic.
    const Profile& pt = profiles_[target];
    const Profile& po = profiles_[other];
    bool keep_target = pt.customer_ids != po.customer_ids ? pt.customer_ids > po.customer_ids
                                                          : target < other;
    uint32_t survivor = keep_target ? target : other;
    uint32_t absorbed = keep_target ? other : target;
    Merge(survivor, absorbed);
    if (merges) merges->push_back({survivor, absorbed, cands[c].kind, e.id_hash, e.timestamp});
    target = survivor;
  }
  return target;
}

uint32_t IdentityGraph::Find(IdKind kind, std::string_view value) const {
  uint32_t idx = Lookup(kind, value);
  return idx == kAbsent ? kNoProfile : identifiers_[idx].profile;
}

uint32_t IdentityGraph::FindAny(std::string_view value) const {
  uint32_t p = Find(IdKind::kCustomerId, value);
  if (p != kNoProfile) return p;
  std::string lower(value);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto first = lower.find_first_not_of(" \t");
  auto last = lower.find_last_not_of(" \t");
  std::string trimmed = first == std::string::npos ? "" : lower.substr(first, last - first + 1);
  p = Find(IdKind::kEmail, trimmed);
  if (p != kNoProfile) return p;
  return Find(IdKind::kAnonymousId, value);
}

std::vector<std::pair<IdKind, std::string_view>> IdentityGraph::IdentifiersOf(uint32_t profile) const {
  std::vector<std::pair<IdKind, std::string_view>> out;
  if (profile >= profiles_.size()) return out;
  ForEachIdentifier(profiles_[profile], [&](uint32_t idx) {
    out.emplace_back(identifiers_[idx].kind, Value(identifiers_[idx]));
  });
  return out;
}

std::string_view IdentityGraph::CustomerIdOf(uint32_t profile) const {
  if (profile >= profiles_.size()) return {};
  for (uint32_t idx = profiles_[profile].first; idx != kNoIdentifier; idx = identifiers_[idx].next) {
    if (identifiers_[idx].kind == IdKind::kCustomerId) return Value(identifiers_[idx]);
  }
  return {};
}

std::string_view IdentityGraph::DisplayIdOf(uint32_t profile) const {
  if (profile >= profiles_.size()) return {};
  std::string_view best;
  int best_rank = 99;
  ForEachIdentifier(profiles_[profile], [&](uint32_t idx) {
    int rank = static_cast<int>(identifiers_[idx].kind);
    if (rank < best_rank) { best_rank = rank; best = Value(identifiers_[idx]); }
  });
  return best;
}

std::vector<std::pair<IdKind, std::string>> IdentityGraph::Forget(uint32_t profile) {
  std::vector<std::pair<IdKind, std::string>> out;
  if (profile >= profiles_.size() || !profiles_[profile].alive) return out;
  ForEachIdentifier(profiles_[profile], [&](uint32_t idx) {
    Identifier& id = identifiers_[idx];
    out.emplace_back(id.kind, std::string(Value(id)));
    IndexErase(idx);
    std::fill(arena_.begin() + static_cast<ptrdiff_t>(id.offset()),
              arena_.begin() + static_cast<ptrdiff_t>(id.offset() + id.length), '\0');
    id.profile = kNoProfile;
  });
  profiles_[profile].first = profiles_[profile].last = kNoIdentifier;
  profiles_[profile].count = 0;
  profiles_[profile].customer_ids = 0;
  profiles_[profile].alive = false;
  --alive_count_;
  return out;
}

void IdentityGraph::SerializeProfile(uint32_t profile, std::string* out) const {
  const Profile& p = profiles_[profile];
  PutVarint(out, p.count);
  ForEachIdentifier(p, [&](uint32_t idx) {
    const Identifier& id = identifiers_[idx];
    out->push_back(static_cast<char>(id.kind));
    out->push_back(static_cast<char>((id.shared ? 0x80 : 0) | std::min<int>(id.refusals, 0x7f)));
    PutString(out, Value(id));
  });
}

Status IdentityGraph::RestoreProfile(uint32_t profile, std::string_view in) {
  while (profiles_.size() <= profile) {
    profiles_.emplace_back();
    profiles_.back().alive = false;
  }
  Profile& p = profiles_[profile];
  if (p.alive) return Status::Corruption("profile " + std::to_string(profile) + " restored twice");
  p.alive = true;
  ++alive_count_;
  Reader r(in);
  uint64_t n = r.Varint();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    auto kind = static_cast<IdKind>(r.Byte());
    uint8_t flags = r.Byte();
    std::string_view value = r.String();
    if (!r.ok()) break;
    if (kind != IdKind::kCustomerId && kind != IdKind::kEmail && kind != IdKind::kAnonymousId) {
      return Status::Corruption("profile " + std::to_string(profile) + ": bad identifier kind");
    }
    uint32_t idx = AddIdentifier(kind, value, profile);
    identifiers_[idx].shared = (flags & 0x80) != 0;
    identifiers_[idx].refusals = flags & 0x7f;
  }
  if (!r.ok()) return Status::Corruption("profile " + std::to_string(profile) + ": truncated identity");
  return Status::OK();
}

void IdentityGraph::EnsureSlots(size_t n) {
  while (profiles_.size() < n) {
    profiles_.emplace_back();
    profiles_.back().alive = false;
  }
}

void IdentityGraph::SerializeFlags(std::string* out) const {
  PutVarint(out, stats_.profiles_created);
  PutVarint(out, stats_.merges);
  PutVarint(out, stats_.refused_merges);
  PutVarint(out, stats_.shared_identifiers);
  PutVarint(out, stats_.capped_identifiers);
}

Status IdentityGraph::RestoreFlags(std::string_view in) {
  Reader r(in);
  stats_.profiles_created = r.Varint();
  stats_.merges = r.Varint();
  stats_.refused_merges = r.Varint();
  stats_.shared_identifiers = r.Varint();
  stats_.capped_identifiers = r.Varint();
  return r.ok() ? Status::OK() : Status::Corruption("identity counters truncated");
}

void IdentityGraph::ShrinkToFit() {
  identifiers_.shrink_to_fit();
  arena_.shrink_to_fit();
  profiles_.shrink_to_fit();
}

size_t IdentityGraph::MemoryBytes() const {
  size_t n = identifiers_.capacity() * sizeof(Identifier) + arena_.capacity() + index_slots_.capacity() * sizeof(uint32_t) +
             profiles_.capacity() * sizeof(Profile);
  return n;
}

}  // namespace shoal
