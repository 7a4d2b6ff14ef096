#include "server/activation.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>

#include "common/json_writer.h"

namespace shoal {

namespace {

std::string Hex(const unsigned char* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &len);
  return Hex(digest, len);
}

std::string NormalizeEmailForAds(std::string_view email) {
  std::string out(Trim(email));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (out.find('@') == std::string::npos) return "";
  return out;
}

std::string NormalizePhoneE164(std::string_view phone, std::string_view default_country_code) {
  std::string_view p = Trim(phone);
  bool international = false;
  if (!p.empty() && p.front() == '+') {
    international = true;
    p.remove_prefix(1);
  }
  std::string digits;
  for (char c : p) {
    if (std::isdigit(static_cast<unsigned char>(c))) digits.push_back(c);
    else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')' && c != '/') return "";
  }
  if (!international && digits.size() > 2 && digits.compare(0, 2, "00") == 0) {
    international = true;
    digits.erase(0, 2);
  }
  if (!international) {
    if (default_country_code.empty()) return "";
    size_t zeros = digits.find_first_not_of('0');
    if (zeros == std::string::npos) return "";
    digits.erase(0, zeros);
    digits.insert(0, default_country_code);
  }
  if (digits.size() < 8 || digits.size() > 15 || digits[0] == '0') return "";
  return "+" + digits;
}

Result<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "jsonl") return ExportFormat::kJsonl;
  if (name == "customer_list") return ExportFormat::kCustomerList;
  return Status::InvalidArgument("unknown export format '" + std::string(name) +
                                 "' (csv, jsonl or customer_list)");
}

std::string FormatAudienceExport(const std::vector<ExportRow>& rows, const ExportOptions& options) {
  std::string out;
  switch (options.format) {
    case ExportFormat::kCsv:
      out = "customer_id,email,phone\n";
      for (const ExportRow& r : rows) {
        AppendCsvText(&out, r.customer_id);
        out.push_back(',');
        AppendCsvText(&out, r.email);
        out.push_back(',');
        AppendCsvText(&out, r.phone);
        out.push_back('\n');
      }
      break;
    case ExportFormat::kJsonl:
      for (const ExportRow& r : rows) {
        out += "{\"customer_id\":";
        AppendJsonString(&out, r.customer_id);
        out += ",\"email\":";
        if (r.email.empty()) out += "null"; else AppendJsonString(&out, r.email);
        out += ",\"phone\":";
        if (r.phone.empty()) out += "null"; else AppendJsonString(&out, r.phone);
        out += "}\n";
      }
      break;
    case ExportFormat::kCustomerList:
      out = "Email,Phone\n";
      for (const ExportRow& r : rows) {
        std::string email = NormalizeEmailForAds(r.email);
        std::string phone = NormalizePhoneE164(r.phone, options.default_country_code);
        if (email.empty() && phone.empty()) continue;
        if (!email.empty()) out += Sha256Hex(email);
        out.push_back(',');
        if (!phone.empty()) out += Sha256Hex(phone);
        out.push_back('\n');
      }
      break;
  }
  return out;
}

}  // namespace shoal
