// Identity resolution: links the identifiers events carry (customer id, email, anonymous id) into
// profiles, merging profiles when an event shows two of them are one person, within guards
// against over-merging. Profiles are dense indices; a merged-away profile stays as a dead slot.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ingest/event.h"

namespace shoal {

enum class IdKind : uint8_t { kCustomerId = 1, kEmail = 2, kAnonymousId = 3 };
std::string_view IdKindName(IdKind kind);

constexpr uint32_t kNoProfile = 0xffffffffu;

struct IdentityOptions {
  // A profile never holds more identifiers than this; a merge that would exceed it is refused.
  uint32_t max_identifiers_per_profile = 100;
  // Profiles holding this many distinct customer ids are never merged further by email or
  // device (1: two different customer ids are always two people).
  uint32_t max_customer_ids_per_profile = 1;
  // An email or anonymous id that is refused for merging with this many distinct profiles is
  // marked shared (a family email, a shop's kiosk tablet) and never links anything again.
  uint32_t shared_identifier_threshold = 2;
};

// Why a merge happened, for the merge log.
struct MergeRecord {
  uint32_t survivor = kNoProfile;   // the profile that remains
  uint32_t absorbed = kNoProfile;   // the profile merged into it (now dead)
  IdKind via_kind = IdKind::kCustomerId;
  uint64_t event_id_hash = 0;       // the event that linked them
  TimeMicros at = 0;                // that event's timestamp
};

// Counts for the closing summary.
struct IdentityStats {
  uint64_t profiles_created = 0, merges = 0, refused_merges = 0, shared_identifiers = 0,
           capped_identifiers = 0;
};

// Not thread-safe: one writer (the engine's apply loop); const methods may run concurrently with
// each other but not with Resolve.
class IdentityGraph {
 public:
  explicit IdentityGraph(IdentityOptions options = {});

  // Attributes `e` to a profile: finds the profiles of its identifiers, creates one when none is
  // known, attaches new identifiers, and merges profiles the event links (appending a record to
  // *merges for each; the caller combines their trait states: absorbed into survivor). Returns
  // kNoProfile when the event has no identifier (an anonymous basket).
  uint32_t Resolve(const Event& e, std::vector<MergeRecord>* merges);

  // Profile of an identifier of a given kind, or kNoProfile.
  uint32_t Find(IdKind kind, std::string_view value) const;
  // Profile of an identifier of any kind (customer id first, then email lower-cased, then
  // anonymous id), or kNoProfile.
  uint32_t FindAny(std::string_view value) const;

  size_t num_slots() const { return profiles_.size(); }   // alive and dead profile slots
  size_t num_alive() const { return alive_count_; }
  bool Alive(uint32_t profile) const { return profile < profiles_.size() && profiles_[profile].alive; }
  // The profile's identifiers as (kind, value), in attachment order.
  std::vector<std::pair<IdKind, std::string_view>> IdentifiersOf(uint32_t profile) const;
  // The profile's customer id (its first), or "" when it has none.
  std::string_view CustomerIdOf(uint32_t profile) const;
  // A display id: customer id, else email, else anonymous id.
  std::string_view DisplayIdOf(uint32_t profile) const;
  const IdentityStats& stats() const { return stats_; }

  // Erasure: detaches every identifier of `profile` and marks it dead. Returns its identifiers.
  std::vector<std::pair<IdKind, std::string>> Forget(uint32_t profile);

  // Persistence of one profile's identity part (its identifiers), and of the shared flags.
  void SerializeProfile(uint32_t profile, std::string* out) const;
  // Restores a profile at slot `profile` (slots between are created dead).
  Status RestoreProfile(uint32_t profile, std::string_view in);
  // Grows the slot count to n with dead slots (restoring a graph whose last slots were merged).
  void EnsureSlots(size_t n);
  void SerializeFlags(std::string* out) const;
  Status RestoreFlags(std::string_view in);
  size_t MemoryBytes() const;
  // Releases spare capacity of the identifier table, the text arena and the profile lists
  // (after a bulk load). Lookups and identifiers are unchanged; string_views returned before
  // are invalidated (as by any Resolve).
  void ShrinkToFit();

 private:
  static constexpr uint32_t kNoIdentifier = UINT32_MAX;
  static constexpr uint32_t kAbsent = UINT32_MAX;  // Lookup: no such identifier
  // 20 bytes: a profile's identifiers are a list threaded through `next` (in the order they
  // were added, merges appending the absorbed profile's list), not a vector per profile.
  struct Identifier {
    uint32_t profile;
    uint32_t offset_low;   // offset into arena_: low 32 bits ...
    uint32_t length;
    uint32_t next = kNoIdentifier;  // the profile's next identifier
    IdKind kind;
    uint8_t offset_high;   // ... and high 8 bits (arena up to 1 TiB)
    uint8_t refusals = 0;
    bool shared = false;
    uint64_t offset() const { return (uint64_t{offset_high} << 32) | offset_low; }
  };
  struct Profile {
    uint32_t first = kNoIdentifier;  // head and tail of the identifier list
    uint32_t last = kNoIdentifier;
    uint32_t count = 0;              // identifiers in the list
    uint16_t customer_ids = 0;
    bool alive = true;
  };
  // Calls fn(identifier index) for each of the profile's identifiers, in order.
  template <typename Fn> void ForEachIdentifier(const Profile& p, Fn&& fn) const {
    for (uint32_t idx = p.first; idx != kNoIdentifier; idx = identifiers_[idx].next) fn(idx);
  }

  static uint64_t KeyHash(IdKind kind, std::string_view value);
  uint64_t KeyHashOf(uint32_t identifier_idx) const {
    return KeyHash(identifiers_[identifier_idx].kind, Value(identifiers_[identifier_idx]));
  }
  std::string_view Value(const Identifier& id) const {
    return std::string_view(arena_.data() + id.offset(), id.length);
  }
  uint32_t Lookup(IdKind kind, std::string_view value) const;  // identifier index or kAbsent
  uint32_t AddIdentifier(IdKind kind, std::string_view value, uint32_t profile);
  uint32_t NewProfile();
  bool CanMerge(uint32_t a, uint32_t b) const;
  void Merge(uint32_t survivor, uint32_t absorbed);
  void Refuse(uint32_t identifier_idx);
  // The identifier index (see index_slots_): home slot and fingerprint of a key hash, the slot
  // word of an identifier, inserting (the identifier's text already in the arena) and erasing
  // (before its text is cleared), and rebuilding with 2^bits slots.
  size_t HomeSlot(uint64_t hash) const { return static_cast<size_t>(hash >> (64 - index_bits_)); }
  uint64_t Fingerprint(uint64_t hash) const { return (hash & 0xffffffffull) >> index_bits_; }
  uint32_t SlotWord(uint64_t hash, uint32_t identifier_idx) const {
    return static_cast<uint32_t>((Fingerprint(hash) << index_bits_) | (uint64_t{identifier_idx} + 1));
  }
  void IndexInsert(uint64_t hash, uint32_t identifier_idx);
  void IndexErase(uint32_t identifier_idx);
  void IndexRebuild(uint32_t bits);

  IdentityOptions options_;
  std::vector<Identifier> identifiers_;
  std::string arena_;
  // Identifier index: open addressing with linear probing over 2^index_bits_ 32-bit slots, at
  // most half full. A slot is 0 when empty, else identifier index + 1 in its low index_bits_
  // bits and, above them, the low 32 - index_bits_ bits of the key hash shifted down (a
  // fingerprint: most probes of other identifiers end there; a match is confirmed by comparing
  // kind and text). The home slot is the hash's top index_bits_ bits. Rebuilding recomputes
  // the hashes from the identifiers, so the table keeps no hashes: 4 bytes a slot, where a
  // 64-bit hash and a 32-bit index took 12. The table grows when it would pass half full or
  // an identifier index would not fit in index_bits_ bits.
  std::vector<uint32_t> index_slots_;
  uint32_t index_bits_ = 0;
  size_t index_size_ = 0;
  std::vector<Profile> profiles_;
  size_t alive_count_ = 0;
  IdentityStats stats_;
};

}  // namespace shoal
