// Activation helpers: webhook signatures, ad-platform normalisation and hashing, and audience
// exports (CSV, JSONL, ad-platform customer lists). Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace shoal {

// Lower-case hex of SHA-256(data).
std::string Sha256Hex(std::string_view data);
// Lower-case hex of HMAC-SHA256(key, data): the X-Shoal-Signature header is "sha256=" + this
// over the exact request body with the destination's secret.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// Email as the ad platforms hash it: trimmed, lower-cased. "" when it has no '@'.
std::string NormalizeEmailForAds(std::string_view email);
// Phone in E.164 ("+" then 8-15 digits): a leading "+" or "00" keeps the country code given;
// otherwise leading trunk zeros are dropped and `default_country_code` (digits, e.g. "44") is
// put in front. "" when no valid number results (too short/long, or no country code known).
std::string NormalizePhoneE164(std::string_view phone, std::string_view default_country_code);

enum class ExportFormat {
  kCsv,           // customer_id,email,phone (plain, for your own tools)
  kJsonl,         // {"customer_id":..,"email":..,"phone":..} per line
  kCustomerList,  // ad-platform customer list: Email,Phone columns of SHA-256 hex of the
                  // normalised values (Google Customer Match / Meta custom audiences)
};
// "csv", "jsonl", "customer_list" -> format; InvalidArgument naming the accepted values.
Result<ExportFormat> ParseExportFormat(std::string_view name);

struct ExportRow {
  std::string customer_id;
  std::string email;  // "" when unknown
  std::string phone;  // "" when unknown
};

struct ExportOptions {
  ExportFormat format = ExportFormat::kCsv;
  std::string default_country_code;  // for phones without one (customer lists); "" = none
};

// The export's text. Customer lists skip rows with neither a usable email nor phone, and
// include the phone column only as E.164 (see NormalizePhoneE164). Consent is the caller's:
// pass only the rows that may be sent.
std::string FormatAudienceExport(const std::vector<ExportRow>& rows, const ExportOptions& options);

}  // namespace shoal
