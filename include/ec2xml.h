/* ec2xml.h — placeholder: being written */
#pragma once
