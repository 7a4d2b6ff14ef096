#include "ingest/reader.h"

#include "ingest/delimited_reader.h"
#include "ingest/jsonl_reader.h"
#include "ingest/reader_support.h"

namespace shoal {

EventReader::~EventReader() = default;

SourceFormat ResolveFormat(const SourceSpec& spec) {
  if (spec.format != SourceFormat::kAuto) return spec.format;
  if (spec.mapping) return SourceFormat::kDelimited;
  auto ends_with = [&](std::string_view suffix) {
    return spec.path.size() >= suffix.size() &&
           spec.path.compare(spec.path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".jsonl") || ends_with(".ndjson") || ends_with(".json") || ends_with(".jsonl.gz")) {
    return SourceFormat::kJsonl;
  }
  if (spec.path == "-") return SourceFormat::kJsonl;  // stdin: the canonical format
  return SourceFormat::kDelimited;
}

Result<std::unique_ptr<EventReader>> EventReader::Open(const SourceSpec& spec,
                                                       const EventTypeRegistry& registry,
                                                       Quarantine* quarantine) {
  SourceFormat format = ResolveFormat(spec);
  if (format == SourceFormat::kJsonl && spec.mapping) {
    return Status::InvalidArgument("'" + spec.path + "': mappings apply to delimited sources, "
                                   "not JSONL");
  }
  SHOAL_ASSIGN_OR_RETURN(auto input, ingest_internal::InputBuffer::Open(spec.path, spec.max_record_bytes));
  if (format == SourceFormat::kJsonl) {
    auto reader = std::make_unique<ingest_internal::JsonlReader>(std::move(input), registry, quarantine);
    reader->set_max_record_bytes(spec.max_record_bytes);
    return std::unique_ptr<EventReader>(std::move(reader));
  }
  return ingest_internal::DelimitedReader::Make(std::move(input), spec, registry, quarantine);
}

}  // namespace shoal
