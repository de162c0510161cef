module gortpoolbench

go 1.19
