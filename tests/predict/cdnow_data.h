// Test helper: the CDNOW 1/10th sample (Fader & Hardie) read from SHOAL_SHARED_DATA/cdnow, and
// the (x, t_x, T, mean value) calibration summary built from the raw event log.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/time.h"

namespace shoal::testing_cdnow {

struct CdnowCustomer {
  int sample_id = 0;
  double x = 0;                  // repeat purchase days in calibration
  double t_x = 0;                // weeks from first purchase to last repeat purchase
  double T = 0;                  // weeks from first purchase to 1997-09-30
  double mean_value = 0;         // mean of the per-day sales of the repeat days (0 if x = 0)
  double holdout_purchases = 0;  // distinct purchase days 1997-10-01 .. 1998-06-30
};

namespace detail {

inline std::string DataPath(const std::string& name) {
  return std::string(SHOAL_SHARED_DATA) + "/cdnow/" + name;
}

inline std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (header) {
      header = false;
      continue;
    }
    std::vector<std::string> fields;
    std::stringstream stream(line);
    std::string field;
    while (std::getline(stream, field, ',')) fields.push_back(field);
    rows.push_back(std::move(fields));
  }
  return rows;
}

inline int64_t DayOfYyyymmdd(const std::string& text) {
  const long value = std::strtol(text.c_str(), nullptr, 10);
  return DaysFromCivil(value / 10000, static_cast<unsigned>(value / 100 % 100),
                       static_cast<unsigned>(value % 100));
}

}  // namespace detail

inline std::vector<CdnowCustomer> BuildFromElog() {
  const int64_t calibration_end = DaysFromCivil(1997, 9, 30);
  const int64_t holdout_end = DaysFromCivil(1998, 6, 30);
  // sample id -> (day -> sales of that day)
  std::map<int, std::map<int64_t, double>> days_by_customer;
  for (const auto& fields : detail::ReadCsv(detail::DataPath("cdnowElog.csv"))) {
    const int sample_id = std::atoi(fields.at(1).c_str());
    days_by_customer[sample_id][detail::DayOfYyyymmdd(fields.at(2))] +=
        std::atof(fields.at(4).c_str());
  }
  std::vector<CdnowCustomer> customers;
  for (const auto& [sample_id, days] : days_by_customer) {
    CdnowCustomer customer;
    customer.sample_id = sample_id;
    const int64_t first = days.begin()->first;
    customer.T = static_cast<double>(calibration_end - first) / 7.0;
    double value_sum = 0;
    for (const auto& [day, sales] : days) {
      if (day == first) continue;
      if (day <= calibration_end) {
        customer.x += 1;
        customer.t_x = static_cast<double>(day - first) / 7.0;
        value_sum += sales;
      } else if (day <= holdout_end) {
        customer.holdout_purchases += 1;
      }
    }
    customer.mean_value = customer.x > 0 ? value_sum / customer.x : 0;
    customers.push_back(customer);
  }
  return customers;
}

inline std::vector<CdnowCustomer> ReadPublishedSummary() {
  std::vector<CdnowCustomer> customers;
  for (const auto& fields : detail::ReadCsv(detail::DataPath("cdnow_customers_summary.csv"))) {
    CdnowCustomer customer;
    customer.sample_id = std::atoi(fields.at(0).c_str());
    customer.x = std::atof(fields.at(1).c_str());
    customer.t_x = std::atof(fields.at(2).c_str());
    customer.T = std::atof(fields.at(3).c_str());
    customers.push_back(customer);
  }
  return customers;
}

inline std::vector<CdnowCustomer> ReadPublishedSummaryWithValues() {
  std::vector<CdnowCustomer> customers;
  for (const auto& fields :
       detail::ReadCsv(detail::DataPath("cdnow_customers_summary_with_transactions.csv"))) {
    CdnowCustomer customer;
    customer.sample_id = std::atoi(fields.at(0).c_str());
    customer.x = std::atof(fields.at(1).c_str());
    customer.t_x = std::atof(fields.at(2).c_str());
    customer.T = std::atof(fields.at(3).c_str());
    customer.mean_value = std::atof(fields.at(4).c_str());
    customers.push_back(customer);
  }
  return customers;
}

}  // namespace shoal::testing_cdnow
