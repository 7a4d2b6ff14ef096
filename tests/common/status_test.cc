#include "common/status.h"

#include <gtest/gtest.h>

namespace shoal {
namespace {

Result<int> Half(int v) {
  if (v % 2) return Status::InvalidArgument("odd: " + std::to_string(v));
  return v / 2;
}

Status Quarter(int v, int* out) {
  SHOAL_ASSIGN_OR_RETURN(int h, Half(v));
  SHOAL_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::OK();
}

TEST(StatusTest, PropagatesErrors) {
  int out = -1;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status st = Quarter(6, &out);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(st.WithContext("file.csv:3").ToString(), "InvalidArgument: file.csv:3: odd: 3");
}

}  // namespace
}  // namespace shoal
